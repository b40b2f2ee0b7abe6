#!/bin/sh
# `bvtool dynamics` end to end, and the data_map figure of `bvtool plot` that
# draws its view: the summary's lines, every bad input (exact stderr line,
# exit status), the rows replaced on a re-run, the rows of a run that is not
# done any more removed, and data_map.dat against SQL over the database
# (tests/test_dynamics.py holds the numbers themselves to NumPy).
# Needs BVTOOL, BV_TMP, sqlite3, awk and Fashion-MNIST; gnuplot for the image.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_dynamics.$$
mkdir -p "$t"
cd "$t"
q() { sqlite3 -separator ' ' -cmd '.nullvalue NaN' "$1" "$2"; }

G="--train-subset 1000 --teacher mlp:16 --teacher-epochs 1 --student mlp:8 --epochs 4 --seeds 2 --temps 4 --methods ce,kd"
"$bv" collect --db a.db $G >/dev/null

# --- bad input
expect 3 "bvtool dynamics: database 'none.db' does not exist" "$bv" dynamics --db none.db
expect 2 "bvtool dynamics: --split: unknown split 'oob' (expected test or train)" "$bv" dynamics --db a.db --split oob
expect 8 "bvtool dynamics: 'a.db' has no done student run with a recorded train epoch (collect with --record-train)" \
	"$bv" dynamics --db a.db --split train
cp a.db nan.db
q nan.db "UPDATE snapshots SET logits = X'0000C07F' || substr(logits, 5)
          WHERE epoch = 3 AND split = 'test' AND run_id = (SELECT id FROM runs WHERE method = 'kd' AND seed = 2)"
kd2=$(q nan.db "SELECT id FROM runs WHERE method = 'kd' AND seed = 2")
expect_sub 4 "bvtool dynamics: run $kd2 (kd T=4 seed 2) epoch 3: non-finite logit (nan) for test sample 0" \
	"$bv" dynamics --db nan.db

# --- before dynamics: plot skips data_map, saying why
"$bv" decompose --db a.db --bootstrap 0 >/dev/null
run "$bv" plot --db a.db --out before
assert "plot without dynamics: the figure skipped, saying why" \
	grep -qx "skipped data_map: no training dynamics of kd students at T = 4 (run bvtool dynamics)" "$out"

# --- the rows
run "$bv" dynamics --db a.db
assert "dynamics exits 0 (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "the first line" [ "$(head -n 1 "$out")" = "dynamics of the test split: 4 student runs, 10000 samples" ]
assert "a line for ce" grep -q "^ce             2 runs  4 epochs  correct " "$out"
assert "a line for kd T=4" grep -q "^kd T=4         2 runs  4 epochs  correct " "$out"
assert "4 epochs are not sparse" [ -z "$(grep sparse "$out" || true)" ]
assert "one row per student run and test sample" [ "$(q a.db "SELECT count(*) FROM dynamics")" = 40000 ]
assert "n_epochs 4" [ "$(q a.db "SELECT DISTINCT n_epochs FROM dynamics")" = 4 ]
assert "first_learned NULL exactly where the last epoch is wrong (correctness < 1 or learned)" \
	[ "$(q a.db "SELECT count(*) FROM dynamics WHERE (first_learned IS NULL AND correctness = 1)
	             OR (first_learned IS NOT NULL AND correctness = 0)")" = 0 ]
sum1=$(q a.db "SELECT * FROM dynamics ORDER BY 1, 2, 3" | cksum)
"$bv" dynamics --db a.db >/dev/null
assert "a re-run leaves the same rows" [ "$(q a.db "SELECT * FROM dynamics ORDER BY 1, 2, 3" | cksum)" = "$sum1" ]
cp a.db reset.db
q reset.db "UPDATE runs SET status = 'pending' WHERE method = 'ce' AND seed = 1"
run "$bv" dynamics --db reset.db
assert "a run not done: its rows removed, said" grep -qx "removed the test rows of 1 run that are not done (reset or deleted)" "$out"
assert "a run not done: 3 runs' rows left" [ "$(q reset.db "SELECT count(DISTINCT run_id) FROM dynamics")" = 3 ]

# --- sparse: two recorded epochs
"$bv" collect --db sparse.db $G --record-epochs 2,4 >/dev/null
run "$bv" dynamics --db sparse.db
assert "sparse runs named" grep -qx "sparse: 4 runs have fewer than 3 recorded test epochs (ce seed 1: 2, ce seed 2: 2, kd T=4 seed 1: 2, kd T=4 seed 2: 2); their first_learned, forgetting and variability rest on so few (n_epochs says how many)" "$out"

# --- the data map
run "$bv" plot --db a.db --out out
assert "plot exits 0 or 7 without gnuplot (status $status)" [ "$status" = 0 ] || [ "$status" = 7 ]
assert "data_map.dat written" [ -s out/data_map.dat ]
grep -v '^#' out/data_map.dat >got
assert "one row per test sample" [ "$(wc -l <got)" = 10000 ]
q a.db "SELECT sample_idx, variability, confidence FROM dynamics_by_method
        WHERE method = 'kd' AND temperature = 4 AND split = 'test' ORDER BY sample_idx" >want
assert "confidence and variability are the view's (1e-9)" awk '
	NR == FNR { v[$1] = $2; c[$1] = $3; next }
	{ d = $2 - v[$1]; e = $3 - c[$1]; if (d < 0) d = -d; if (e < 0) e = -e; if (d > 1e-9 || e > 1e-9) bad = 1 }
	END { exit bad }' want got
reg=$(q a.db "SELECT sum(regularization) FROM sample_stats WHERE method = 'kd' AND temperature = 4 AND split = 'test'
              AND epoch = (SELECT max(epoch) FROM decompositions WHERE split = 'test' AND temperature = 4)")
assert "the highlighted samples are kd's regularization samples ($reg)" [ "$(awk '$4 == 1' got | wc -l)" = "$reg" ]
assert "the header gives the group sizes" grep -q "^# group means (regularization samples at epoch 4 | the other samples), $reg | $((10000 - reg)) samples:" out/data_map.dat
if [ "$status" = 0 ]; then
	assert "data_map.png drawn" [ -s out/data_map.png ]
	assert "the summary names it" grep -q "^out/data_map.png: data map of the kd students at T = 4" "$out"
fi
# text where a number belongs: refused, naming the row
cp a.db text.db
q text.db "UPDATE dynamics SET confidence = 'x' WHERE sample_idx = 7 AND run_id = 3"
expect 4 "bvtool plot: 'text.db': the dynamics row of run 3, split 'test', sample 7 has a bad confidence (the database is damaged)" \
	"$bv" plot --db text.db --out out-text

# --- a run trained again loses its rows with its snapshots (bv_db_run_reset)
cp a.db re.db
"$bv" dynamics --db re.db >/dev/null
ce1=$(q re.db "SELECT id FROM runs WHERE method = 'ce' AND seed = 1")
assert "dynamics rows of ce seed 1 before" [ "$(q re.db "SELECT count(*) FROM dynamics WHERE run_id = $ce1")" = 10000 ]
q re.db "UPDATE runs SET status = 'failed' WHERE id = $ce1"
"$bv" collect --db re.db $G >/dev/null
assert "... none once collect has trained it again" [ "$(q re.db "SELECT count(*) FROM dynamics WHERE run_id = $ce1")" = 0 ]

# --- export writes the rows, one file pair per (run, split), as the table holds them
run "$bv" export --db a.db --out x
assert "export with dynamics (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "... says how many dynamics files" grep -q " and 4 dynamics files written to 'x'" "$out"
assert "... kd T=4 seed 2's rows in dynamics/kd_T4_s2_test.csv and .npy, exactly" /usr/bin/python3 -c "
import csv, math, sqlite3, sys
import numpy as np
con = sqlite3.connect('a.db')
want = con.execute('SELECT sample_idx, first_learned, forgetting, correctness, confidence, variability, '
                   'n_epochs FROM dynamics d JOIN runs r ON r.id = d.run_id WHERE r.method = \\'kd\\' '
                   'AND r.seed = 2 AND d.split = \\'test\\' ORDER BY sample_idx').fetchall()
rows = list(csv.reader(open('x/dynamics/kd_T4_s2_test.csv')))[1:]
a = np.load('x/dynamics/kd_T4_s2_test.npy')
ok = len(rows) == len(want) == a.shape[0] and a.shape[1] == 7
for w, r, v in zip(want, rows, a):
    for x, t, f in zip(w, r, v):
        ok = ok and ((x is None and t == '' and math.isnan(f)) or (x is not None and float(t) == x == f))
sys.exit(not ok)"
assert "... listed in the manifest" /usr/bin/python3 -c "
import json, sys
d = json.load(open('x/manifest.json'))['dynamics']
sys.exit(not any(e['run'] == 'kd_T4_s2' and e['split'] == 'test' and e['npy'] == 'dynamics/kd_T4_s2_test.npy' for e in d))"
run "$bv" import --db back.db x
assert "... and import reads that export (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]

cd /
rm -rf "$t"
finish
