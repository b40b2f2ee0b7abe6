UPDATE samples SET label = 1000000000 WHERE split = 'test' AND sample_idx = 3;
