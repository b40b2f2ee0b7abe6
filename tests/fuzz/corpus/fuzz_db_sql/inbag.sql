DELETE FROM inbag WHERE seed = 2;
UPDATE inbag SET count = -5 WHERE sample_idx = 0;
