UPDATE snapshots SET n = 2147483647 WHERE run_id = 2;
