UPDATE snapshots SET k = 1000000 WHERE run_id = 3;
UPDATE snapshots SET logits = x'00' WHERE run_id = 4;
