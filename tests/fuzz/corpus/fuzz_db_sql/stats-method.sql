UPDATE sample_stats SET method = 'x''y' WHERE method = 'wsl';
UPDATE decompositions SET split = 'oob';
