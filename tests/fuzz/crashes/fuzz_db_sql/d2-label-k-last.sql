UPDATE samples SET label = 10 WHERE split = 'test' AND sample_idx = 39;
