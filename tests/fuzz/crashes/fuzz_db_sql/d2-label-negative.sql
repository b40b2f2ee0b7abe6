UPDATE samples SET label = -1 WHERE sample_idx = 0;
