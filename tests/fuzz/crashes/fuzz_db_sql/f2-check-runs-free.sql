UPDATE runs SET test_acc = 1e308, seed = 9223372036854775807 WHERE id = 2;
UPDATE runs SET temperature = -4 WHERE temperature = 8;
