UPDATE snapshots SET logits = zeroblob(1600) WHERE run_id = 5;
UPDATE snapshots SET logits = x'0000c07f' || substr(logits, 5) WHERE run_id = 1;
