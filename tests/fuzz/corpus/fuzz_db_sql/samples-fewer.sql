DELETE FROM samples WHERE split = 'test' AND sample_idx > 20;
