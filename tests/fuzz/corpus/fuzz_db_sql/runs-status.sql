UPDATE runs SET status = 'running' WHERE id = 3;
UPDATE runs SET seed = 1;
