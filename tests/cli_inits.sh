#!/bin/sh
# `collect --inits M` end to end (tests/test_varsplit.py holds the numbers of
# the split to NumPy): bad values; a collection without --inits and one with
# --inits 1 are the same bytes (snapshots, checkpoints, settings) and neither
# has a split; --inits 2 on it trains only the new cells, keeps the old ones,
# and names them (status, collect's lines, checkpoint files); decompose then
# splits every row, and says so; draws with unequal inits are not split; two
# shards merged are the one-machine collection; export then import keeps the
# inits, and export's stats/ holds the split's two columns only when split.
# Needs BVTOOL, BV_TMP, sqlite3 and Fashion-MNIST.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_inits.$$
mkdir -p "$t"
cd "$t"
q() { sqlite3 -separator ' ' "$1" "$2"; }

G="--train-subset 600 --teacher mlp:16 --teacher-epochs 1 --student mlp:8 --epochs 2 --temps 4 --methods ce,kd --jobs 2"

# --- bad values
for v in 0 65; do
	expect 2 "bvtool collect: --inits: $v is out of range (1 to 64)" "$bv" collect --db bad.db $G --inits "$v"
done
expect 2 "bvtool collect: --inits: expected a whole number, got 'two'" "$bv" collect --db bad.db $G --inits two
assert "a refused --inits writes no database" [ ! -e bad.db ]

# --- no --inits and --inits 1: the same collection
"$bv" collect --db a.db $G --seeds 2 >/dev/null
"$bv" collect --db b.db $G --seeds 2 --inits 1 >a1.out
assert "--inits 1: the same snapshots" [ "$(snapshots_sum a.db)" = "$(snapshots_sum b.db)" ]
same=1
for f in a.db.ckpt/*.ckpt; do
	cmp -s "$f" "b.db.ckpt/${f#a.db.ckpt/}" || same=0
done
assert "--inits 1: the same checkpoints, by name" [ "$same" = 1 ]
cfg() { q "$1" "SELECT key, value FROM config ORDER BY key"; }
assert "--inits 1: the same settings" [ "$(cfg a.db)" = "$(cfg b.db)" ]
assert "--inits 1: every run is init 1" [ "$(q b.db "SELECT DISTINCT init FROM runs")" = 1 ]
run "$bv" status --db b.db
assert "status without inits has no init column" [ "$(head -n 1 "$out" | grep -c init)" = 0 ]
"$bv" decompose --db b.db --bootstrap 0 >b.dec
assert "decompose of one init says no split" [ "$(grep -c 'variance by source' b.dec)" = 0 ]
assert "... and stores none" [ "$(q b.db "SELECT count(*) FROM sample_stats WHERE var_init IS NOT NULL OR var_data IS NOT NULL")" = 0 ]
"$bv" report --db b.db >b.md
assert "report of one init has no variance by source" [ "$(grep -c 'Variance by source' b.md)" = 0 ]

# --- --inits 2 on it: only the new cells
before=$(q b.db "SELECT r.method, r.seed, hex(s.logits) FROM snapshots s JOIN runs r ON r.id = s.run_id ORDER BY 1, 2, s.epoch" | cksum)
run "$bv" collect --db b.db $G --seeds 2 --inits 2
assert "--inits 2 extends (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "... training the 4 new cells only" grep -q "^4 of 8 cells to train" "$out"
assert "... named with their init" grep -q "^done: kd T=4 seed 2 init 2 " "$out"
assert "... init 1 untouched" [ "$(q b.db "SELECT r.method, r.seed, hex(s.logits) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.init = 1 ORDER BY 1, 2, s.epoch" | cksum)" = "$before" ]
assert "... init 2 checkpoints named -i2" [ "$(ls b.db.ckpt | grep -c -- '-i2\.ckpt$')" = 4 ]
assert "... and init 2 trained other weights" [ "$(q b.db "SELECT count(DISTINCT hex(s.logits)) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method = 'ce' AND r.seed = 1 AND s.epoch = 2")" = 2 ]
run "$bv" status --db b.db
assert "status shows the init column" [ "$(head -n 1 "$out" | awk '{print $4}')" = init ]
assert "... and init 2 of ce seed 1" grep -Eq '^ce +- +1 +2 +done' "$out"
run "$bv" decompose --db b.db --bootstrap 0
assert "decompose splits (status $status)" [ "$status" = 0 ]
assert "... saying so" grep -q "variance by source: init .* (2 draws x 2 inits)" "$out"
assert "... every row split" [ "$(q b.db "SELECT count(*) FROM sample_stats WHERE var_init IS NULL OR var_data IS NULL")" = 0 ]
assert "... seeds named seed:init" [ "$(q b.db "SELECT DISTINCT seeds FROM decompositions")" = "1:1,1:2,2:1,2:2" ]
"$bv" report --db b.db >b2.md
assert "report: the variance by source, ce and kd" [ "$(grep -c '^| test | 2 | 4 | \(ce\|kd\) | 10000 |' b2.md)" = 2 ]

# --- unequal inits: seed 3 with one init only
cp b.db c.db
cp -r b.db.ckpt c.db.ckpt
"$bv" collect --db c.db $G --seeds 3 --inits 1 >/dev/null
run "$bv" decompose --db c.db --bootstrap 0
assert "unequal inits: decompose still runs (status $status)" [ "$status" = 0 ]
assert "... saying why there is no split" grep -q "the draws have different numbers of inits" "$out"
assert "... and stores none" [ "$(q c.db "SELECT count(*) FROM sample_stats WHERE var_init IS NOT NULL")" = 0 ]

# --- shards with inits, merged: the one-machine collection
"$bv" collect --db s0.db $G --seeds 2 --inits 2 --shard 0/2 >/dev/null
"$bv" collect --db s1.db $G --seeds 2 --inits 2 --shard 1/2 >/dev/null
run "$bv" merge --db m.db s0.db s1.db
assert "merge of shards with inits (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "... = one machine" [ "$(snapshots_sum m.db)" = "$(snapshots_sum b.db)" ]

# --- export and import keep the inits
"$bv" export --db b.db --out x >/dev/null
assert "export names init 2 files _i2" [ -e x/ce_s1_i2_test.npy ] || ls x >&2
assert "... and the split's columns in stats/" [ "$(head -n 1 x/stats/test_T4_e2_kd.csv)" = "sample_idx,bias,variance,loss,regularization,n_seeds,p_true,acc,wsl_weight,teacher_p_true,var_init,var_data" ]
assert "... as 12 columns of the .npy" /usr/bin/python3 -c "import numpy as n, sys; sys.exit(n.load('x/stats/test_T4_e2_kd.npy').shape[1] != 12)"
"$bv" export --db c.db --out xc >/dev/null
assert "without a split, stats/ keeps its 10 columns" [ "$(head -n 1 xc/stats/test_T4_e2_kd.csv)" = "sample_idx,bias,variance,loss,regularization,n_seeds,p_true,acc,wsl_weight,teacher_p_true" ]
run "$bv" import --db i.db x
assert "import of an export with inits (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "... the same snapshots" [ "$(snapshots_sum i.db)" = "$(snapshots_sum b.db)" ]

finish
