#!/bin/sh
# `bvtool decompose` and `bvtool report` end to end on a small collected
# database: the rows written, the summary against SQL over sample_stats, the
# report against the metrics table, the views, every SQL recipe of
# docs/schema.md, and every bad input (exact stderr line, exit status).
# Needs BVTOOL, BV_TMP, sqlite3, python3 (JSON check) and Fashion-MNIST.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
doc="$(dirname "$0")/../docs/schema.md"
t=$BV_TMP/cli_analysis.$$
mkdir -p "$t"
cd "$t"
q() { sqlite3 "$1" "$2"; }
# |a - b| <= tol
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

G="--train-subset 2000 --teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 3"
"$bv" collect --db a.db $G --seeds 3 --temps 1,2,4 --record-train >/dev/null
cp a.db fresh.db

# --- report before any decompose: accuracy only, and it says what to run
run "$bv" report --db fresh.db
assert "report without a decomposition exits 0" [ "$status" = 0 ]
assert "report says to run decompose" grep -q "not decomposed yet: run bvtool decompose" "$out"

# --- decompose every temperature and epoch of the test split
run "$bv" decompose --db a.db --bootstrap 50
assert "decompose exits 0 (status $status)" [ "$status" = 0 ]
assert "one row per sample, method, temperature and epoch" [ "$(q a.db "SELECT count(*) FROM sample_stats WHERE split = 'test'")" = 270000 ]
assert "ce rows have no regularization flag" [ "$(q a.db "SELECT count(*) FROM sample_stats WHERE method = 'ce' AND regularization IS NOT NULL")" = 0 ]
assert "soft rows are flagged 0 or 1" [ "$(q a.db "SELECT count(*) FROM sample_stats WHERE method != 'ce' AND regularization NOT IN (0, 1)")" = 0 ]
assert "loss = bias + variance in every row" [ "$(q a.db "SELECT count(*) FROM sample_stats WHERE abs(loss - bias - variance) > 1e-9")" = 0 ]
assert "variance is never negative" [ "$(q a.db "SELECT count(*) FROM sample_stats WHERE variance < -1e-12")" = 0 ]
assert "ce rows are the same at every temperature" [ "$(q a.db "SELECT count(*) FROM sample_stats a JOIN sample_stats b USING (epoch, split, sample_idx, method) WHERE a.method = 'ce' AND a.temperature = 1 AND b.temperature = 4 AND a.bias != b.bias")" = 0 ]
assert "regularization follows the bv criterion" [ "$(q a.db "SELECT count(*) FROM sample_wide WHERE temperature = 4 AND split = 'test' AND kd_regularization != (kd_bias > ce_bias AND kd_variance < ce_variance)")" = 0 ]
assert "the identity check is printed" grep -q -E "^identity check: max \|loss - bias - variance\| = [0-9.e+-]+ over all rows$" "$out"
# the summary line of kd at T=4 against SQL over sample_stats
line=$(grep -E "^T=4 +epoch 3 +kd " "$out")
got_bias=$(echo "$line" | sed 's/.* bias \([0-9.]*\) .*/\1/')
got_n=$(echo "$line" | sed 's/.*regularization samples \([0-9]*\) .*/\1/')
want_bias=$(q a.db "SELECT printf('%.4f', avg(bias)) FROM sample_stats WHERE temperature = 4 AND epoch = 3 AND split = 'test' AND method = 'kd'")
want_n=$(q a.db "SELECT sum(regularization) FROM sample_stats WHERE temperature = 4 AND epoch = 3 AND split = 'test' AND method = 'kd'")
assert "summary mean bias = SQL avg(bias) ($got_bias vs $want_bias)" [ "$got_bias" = "$want_bias" ]
assert "summary count = SQL sum(regularization) ($got_n vs $want_n)" [ "$got_n" = "$want_n" ]
assert "the view regularization_samples agrees" [ "$(q a.db "SELECT count(*) FROM regularization_samples WHERE temperature = 4 AND epoch = 3 AND split = 'test' AND method = 'kd'")" = "$want_n" ]
assert "a correlation row per soft method" [ "$(q a.db "SELECT count(*) FROM correlations WHERE split = 'test' AND epoch = 3 AND n_points = 3")" = 2 ]
assert "the correlation is printed" grep -q "^correlation (kd, test split, epoch 3, 3 temperatures, 3 seeds): " "$out"
assert "with its bootstrap interval" grep -q "^  bootstrap 95% interval for r over seeds: \[" "$out"
assert "decompositions record the seeds and criterion" [ "$(q a.db "SELECT seeds || ' ' || criterion FROM decompositions WHERE temperature = 4 AND epoch = 3 AND split = 'test'")" = "1,2,3 bv" ]

# --- a second decompose of one selection replaces its rows, and only those
before=$(q a.db "SELECT count(*) FROM sample_stats")
run "$bv" decompose --db a.db --temp 4 --epoch last --criterion teacher --bootstrap 0
assert "decompose --temp 4 --epoch last exits 0" [ "$status" = 0 ]
assert "rows are replaced, not added" [ "$(q a.db "SELECT count(*) FROM sample_stats")" = "$before" ]
assert "the selection now uses the teacher criterion" [ "$(q a.db "SELECT criterion FROM decompositions WHERE temperature = 4 AND epoch = 3")" = teacher ]
assert "other selections keep theirs" [ "$(q a.db "SELECT criterion FROM decompositions WHERE temperature = 2 AND epoch = 3")" = bv ]
assert "teacher criterion: CE_teacher > student loss" [ "$(q a.db "SELECT count(*) FROM sample_stats WHERE temperature = 4 AND epoch = 3 AND split = 'test' AND method = 'kd' AND regularization != (-ln(teacher_p_true) > loss)")" = 0 ]

# --- the training split, out-of-bag samples, the grad criterion
run "$bv" decompose --db a.db --split train --epoch last --bootstrap 0
assert "decompose --split train exits 0" [ "$status" = 0 ]
assert "train rows: 2000 samples x 3 methods x 3 temperatures" [ "$(q a.db "SELECT count(*) FROM sample_stats WHERE split = 'train'")" = 18000 ]
run "$bv" decompose --db a.db --split oob --epoch last --criterion grad --bootstrap 0
assert "decompose --split oob exits 0" [ "$status" = 0 ]
n_oob=$(q a.db "SELECT count(*) FROM sample_stats WHERE split = 'oob' AND method = 'ce' AND temperature = 4")
want_oob=$(q a.db "SELECT count(*) FROM (SELECT sample_idx FROM inbag WHERE count = 0 GROUP BY sample_idx HAVING count(*) >= 2)")
assert "oob: the samples with >= 2 out-of-bag seeds ($n_oob vs $want_oob)" [ "$n_oob" = "$want_oob" ]
assert "oob: n_seeds is the sample's out-of-bag seed count" [ "$(q a.db "SELECT count(*) FROM sample_stats s WHERE split = 'oob' AND n_seeds != (SELECT count(*) FROM inbag i WHERE i.sample_idx = s.sample_idx AND i.count = 0)")" = 0 ]
assert "oob: the left-out samples are counted" grep -q "training samples have < 2 out-of-bag seeds and are left out" "$out"

# --- report: numbers against the metrics table
run "$bv" report --db a.db
assert "report exits 0" [ "$status" = 0 ]
want=$(q a.db "SELECT printf('%.2f', 100 * avg(m.test_acc)) FROM runs r JOIN metrics m ON m.run_id = r.id AND m.epoch = 3 WHERE r.method = 'kd' AND r.temperature = 4")
assert "report: kd T=4 last-epoch mean equals the metrics table ($want)" grep -q -E "^\| kd \| 4 \| 3 \| $want ± " "$out"
want=$(q a.db "SELECT printf('%.2f', 100 * test_acc) FROM runs WHERE method = 'teacher'")
assert "report: the teacher's accuracy ($want)" grep -q -E "^\| teacher \| - \| 1 \| $want \| " "$out"
want=$(q a.db "SELECT printf('%+.2f', avg(100 * (w.test_acc - k.test_acc))) FROM runs w JOIN runs k ON k.seed = w.seed AND k.method = 'kd' AND k.temperature = w.temperature WHERE w.method = 'wsl' AND w.temperature = 4")
assert "report: paired wsl - kd at T=4 ($want)" grep -q -F "| wsl - kd | 4 | 3 | $want | [" "$out"
# kd-filter against kd and wsl at its temperature, and against ce: does filtering hurt?
cp a.db f.db
"$bv" collect --db f.db $G --seeds 3 --methods kd-filter --temps 4 --record-train >/dev/null
run "$bv" report --db f.db
for other in kd wsl; do
	want=$(q f.db "SELECT printf('%+.2f', avg(100 * (f.test_acc - o.test_acc))) FROM runs f JOIN runs o ON o.seed = f.seed AND o.method = '$other' AND o.temperature = f.temperature WHERE f.method = 'kd-filter' AND f.temperature = 4")
	assert "report: paired kd-filter - $other at T=4 ($want)" grep -q -F "| kd-filter - $other | 4 | 3 | $want | [" "$out"
done
assert "report: paired kd-filter - ce at T=4" grep -q -F "| kd-filter - ce | 4 | 3 | " "$out"
run "$bv" report --db a.db --format csv
assert "csv header" [ "$(head -n 1 "$out")" = "table,method,temperature,quantity,value" ]
got=$(grep '^accuracy,kd,4,last_mean,' "$out" | cut -d, -f5)
want=$(q a.db "SELECT 100 * avg(test_acc) FROM runs WHERE method = 'kd' AND temperature = 4")
assert "csv: kd T=4 mean ($got vs $want)" near "$got" "$want" 1e-6
run "$bv" report --db a.db --format json
assert "json parses" /usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["accuracy"] and d["correlation"]' "$out"
expect 2 "bvtool report: --format: unknown format 'xml' (expected md, csv or json)" "$bv" report --db a.db --format xml

# --- the SQL recipes of docs/schema.md: `sql` blocks in the plain sqlite3 shell,
# `sql ext` blocks with the bvtool_sql extension loaded (docs/sql.md)
awk '/^```sql$/ { on = 1; n++; f = sprintf("recipe%02d.sql", n); next }
     /^```sql ext$/ { on = 1; n++; f = sprintf("recipe%02d.ext.sql", n); next }
     /^```/ { on = 0 } on { print > f }' "$doc"
assert "docs/schema.md has recipes" [ -f recipe01.sql ]
assert "docs/schema.md has recipes for the extension" [ -f recipe03.ext.sql ]
for f in recipe*.sql; do
	case $f in
	# shellcheck disable=SC2086 # BV_SQL_CLIENT_ENV is words for env (tests/CMakeLists.txt)
	*.ext.sql) run env ${BV_SQL_CLIENT_ENV:-} sqlite3 -bail -cmd ".load ${BV_SQLEXT%.so}" a.db ".read $f" ;;
	*) run sqlite3 -bail a.db ".read $f" ;;
	esac
	assert "recipe $f runs on a decomposed database (status $status)" [ "$status" = 0 ]
	assert "recipe $f returns rows" [ -s "$out" ]
	cp "$out" "$f.out"
done
# (b) in plain SQL, decoding the float bits from hex(), and (b) with bv_argmax agree
assert "recipe (b) in plain SQL equals (b) with bv_argmax" cmp -s recipe02.sql.out recipe03.ext.sql.out

# --- bad input
expect 2 "bvtool decompose: --temp: temperature 3 is not in 'a.db' (it has 1, 2, 4)" "$bv" decompose --db a.db --temp 3
# a database that does not exist is named, and not created
expect 3 "bvtool decompose: database 'nowhere.db' does not exist" "$bv" decompose --db nowhere.db
assert "decompose creates no database" [ ! -e nowhere.db ]
expect 2 "bvtool decompose: --epoch: epoch 9 is not recorded for the test split (recorded: 1,2,3)" "$bv" decompose --db a.db --epoch 9
expect 2 "bvtool decompose: --epoch: expected an epoch number, last or all, got 'first'" "$bv" decompose --db a.db --epoch first
expect 2 "bvtool decompose: --split: unknown split 'val' (expected test, train or oob)" "$bv" decompose --db a.db --split val
expect 2 "bvtool decompose: --criterion: unknown criterion 'size' (expected bv, grad or teacher)" "$bv" decompose --db a.db --criterion size
expect 3 "bvtool report: database '$t/none.db' does not exist" "$bv" report --db "$t/none.db"
"$bv" collect --db kd-only.db $G --seeds 2 --methods kd --temps 4 >/dev/null
expect 8 "bvtool decompose: 'kd-only.db' has no finished ce runs: decompose needs the ce students as the baseline (bvtool collect --methods ce,kd,...)" "$bv" decompose --db kd-only.db
"$bv" collect --db one.db $G --seeds 1 --temps 4 >/dev/null
expect 8 "bvtool decompose: decompose needs >= 2 finished seeds of ce; 'one.db' has 1" "$bv" decompose --db one.db
cp fresh.db notrain.db
"$bv" collect --db two.db $G --seeds 2 --temps 4 >/dev/null
expect 8 "bvtool decompose: no epoch of the train split is recorded by every run of 'two.db' (collect with --record-train)" "$bv" decompose --db two.db --split train
# a run still being written (not done) is skipped and named
cp fresh.db running.db
sqlite3 running.db "UPDATE runs SET status = 'running' WHERE method = 'wsl' AND temperature = 4 AND seed = 3"
run "$bv" decompose --db running.db --epoch last --bootstrap 0
assert "a running run is skipped (status $status)" [ "$status" = 0 ]
assert "... and named" grep -q "^skipped 1 run that is not done: wsl T=4 seed 3 (running)$" "$out"
assert "... and its seed leaves the paired set at T=4" [ "$(q running.db "SELECT seeds FROM decompositions WHERE temperature = 4")" = "1,2" ]
# NaN logits in a snapshot: named, and nothing written
cp fresh.db nan.db
sqlite3 nan.db "UPDATE snapshots SET logits = X'0000C07F' || substr(logits, 5) WHERE epoch = 2 AND split = 'test' AND run_id = (SELECT id FROM runs WHERE method = 'kd' AND temperature = 2 AND seed = 2)"
id=$(q nan.db "SELECT id FROM runs WHERE method = 'kd' AND temperature = 2 AND seed = 2")
expect 4 "bvtool decompose: run $id (kd T=2 seed 2) epoch 2: non-finite logit (nan) for test sample 0; the run diverged or the database is damaged" "$bv" decompose --db nan.db
assert "nothing written after a failed decompose" [ "$(q nan.db "SELECT count(*) FROM sample_stats")" = 0 ]
# a write refused on the writer thread, after some rows of the run went in:
# the database's error, and the earlier decomposition untouched
cp a.db refuse.db
refuse_rows refuse.db sample_stats "NOT (method = 'wsl' AND epoch = 2)"
before=$(q refuse.db "SELECT count(*), total(bias), total(variance) FROM sample_stats")
expect 6 "bvtool decompose: database 'refuse.db': CHECK constraint failed: refused_by_a_test_check" "$bv" decompose --db refuse.db --bootstrap 0
assert "the earlier rows stay as they were" [ "$(q refuse.db "SELECT count(*), total(bias), total(variance) FROM sample_stats")" = "$before" ]


# --- a damaged or hostile database (D2): every label, count and index read is
# checked before use; exit 4 naming the row, and the database unchanged
sums() { sqlite3 "$1" "SELECT * FROM sample_stats; SELECT * FROM decompositions; SELECT * FROM correlations" | cksum; }
# damaged NAME 'SQL' STATUS 'stderr line' [decompose flags]: apply SQL to a copy
# of fresh.db, expect the failure, and check the file is unchanged
damaged() {
	name=$1 sql=$2 want_status=$3 want_line=$4
	shift 4
	cp fresh.db "$name"
	sqlite3 "$name" "$sql"
	sum_before=$(cksum <"$name")
	expect "$want_status" "$want_line" "$bv" decompose --db "$name" --bootstrap 0 "$@"
	assert "$name: the database is unchanged" [ "$(cksum <"$name")" = "$sum_before" ]
}
damaged lab1.db "UPDATE samples SET label = 1000000000 WHERE split = 'test' AND sample_idx = 5" \
	4 "bvtool decompose: 'lab1.db': test sample 5 has label 1000000000, outside 0..9 (the database is damaged)"
damaged lab2.db "UPDATE samples SET label = 10 WHERE split = 'test' AND sample_idx = 9999" \
	4 "bvtool decompose: 'lab2.db': test sample 9999 has label 10, outside 0..9 (the database is damaged)"
damaged lab3.db "UPDATE samples SET label = 10 WHERE split = 'test' AND sample_idx = 17" \
	4 "bvtool decompose: 'lab3.db': test sample 17 has label 10, outside 0..9 (the database is damaged)"
damaged lab4.db "UPDATE samples SET label = -1 WHERE split = 'test' AND sample_idx = 3" \
	4 "bvtool decompose: 'lab4.db': test sample 3 has label -1, outside 0..9 (the database is damaged)"
damaged lab5.db "UPDATE samples SET label = 4294967297 WHERE split = 'test' AND sample_idx = 3" \
	4 "bvtool decompose: 'lab5.db': test sample 3 has label 4294967297, outside 0..9 (the database is damaged)"
damaged lab6.db "UPDATE samples SET label = '3x' WHERE split = 'test' AND sample_idx = 3" \
	4 "bvtool decompose: 'lab6.db': test sample 3 has label '3x', outside 0..9 (the database is damaged)"
damaged lab7.db "UPDATE samples SET label = 2.5 WHERE split = 'train' AND sample_idx = 1999" \
	4 "bvtool decompose: 'lab7.db': train sample 1999 has label 2.5, outside 0..9 (the database is damaged)" --split train
damaged lab8.db "DELETE FROM samples WHERE split = 'test' AND sample_idx = 40" \
	4 "bvtool decompose: database 'lab8.db': the test samples are not numbered from 0"
damaged k1.db "UPDATE config SET value = '1000000000' WHERE key = 'n_classes'" \
	4 "bvtool decompose: 'k1.db': config n_classes is '1000000000', expected a whole number 2..1024 (the database is damaged)"
damaged k2.db "UPDATE config SET value = '10abc' WHERE key = 'n_classes'" \
	4 "bvtool decompose: 'k2.db': config n_classes is '10abc', expected a whole number 2..1024 (the database is damaged)"
damaged k3.db "UPDATE config SET value = '1' WHERE key = 'n_classes'" \
	4 "bvtool decompose: 'k3.db': config n_classes is '1', expected a whole number 2..1024 (the database is damaged)"
id=$(q fresh.db "SELECT id FROM runs WHERE method = 'kd' AND temperature = 2 AND seed = 2")
damaged blob.db "UPDATE snapshots SET logits = substr(logits, 1, 100) WHERE run_id = $id AND epoch = 3 AND split = 'test'" \
	4 "bvtool decompose: run $id (kd T=2 seed 2) epoch 3: database 'blob.db': the test snapshot of run $id at epoch 3 holds 10000 x 10 logits in 100 bytes, expected 10000 x 10"
damaged snapn.db "UPDATE snapshots SET n = 9999 WHERE run_id = $id AND epoch = 3 AND split = 'test'" \
	4 "bvtool decompose: run $id (kd T=2 seed 2) epoch 3: database 'snapn.db': the test snapshot of run $id at epoch 3 holds 9999 x 10 logits in 400000 bytes, expected 10000 x 10"
# K is the snapshots': one of another k is named; config n_classes only cross-checks them
damaged k4.db "UPDATE snapshots SET k = 12 WHERE run_id = $id AND epoch = 3 AND split = 'test'" \
	4 "bvtool decompose: 'k4.db': run $id epoch 3 has k = 12, the other snapshots of this decomposition have 10 (the database is damaged)"
damaged k5.db "UPDATE config SET value = '12' WHERE key = 'n_classes'" \
	4 "bvtool decompose: 'k5.db': config n_classes is 12, the snapshots of this decomposition have k = 10 (the database is damaged)"
cp fresh.db k6.db
sqlite3 k6.db "DELETE FROM config WHERE key = 'n_classes'"
run "$bv" decompose --db k6.db --epoch last --bootstrap 0
assert "decompose without config n_classes takes K from the snapshots (status $status)" [ "$status" = 0 ]
assert "... and decomposes every test sample" [ "$(q k6.db "SELECT count(*) FROM sample_stats WHERE method = 'ce' AND temperature = 4")" = 10000 ]
damaged snape.db "UPDATE snapshots SET epoch = -7 WHERE run_id = $id AND epoch = 1 AND split = 'test'" \
	4 "bvtool decompose: 'snape.db': run $id has a test snapshot at epoch -7, expected a whole number 0..1000000 (the database is damaged)"
damaged st1.db "PRAGMA ignore_check_constraints = 1; UPDATE runs SET status = 'weird' WHERE id = $id" \
	4 "bvtool decompose: 'st1.db': run $id has status 'weird', expected pending, running, done or failed (the database is damaged)"
damaged st2.db "PRAGMA ignore_check_constraints = 1; UPDATE runs SET method = 'kd2' WHERE id = $id" \
	4 "bvtool decompose: 'st2.db': run $id has method 'kd2', expected teacher, ce, kd, wsl or kd-filter (the database is damaged)"
damaged seed1.db "UPDATE runs SET seed = 4294967298 WHERE id = $id" \
	4 "bvtool decompose: 'seed1.db': run $id has seed 4294967298, expected a whole number 0..2147483647 (the database is damaged)"
damaged temp1.db "UPDATE runs SET temperature = 'nan' WHERE id = $id" \
	4 "bvtool decompose: 'temp1.db': run $id is a kd run with temperature 'nan', expected a number > 0 (the database is damaged)"
damaged temp2.db "UPDATE runs SET temperature = NULL WHERE id = $id" \
	4 "bvtool decompose: 'temp2.db': run $id is a kd run with temperature NULL, expected a number > 0 (the database is damaged)"
ce1=$(q fresh.db "SELECT id FROM runs WHERE method = 'ce' AND seed = 1")
damaged temp3.db "UPDATE runs SET temperature = 4 WHERE id = $ce1" \
	4 "bvtool decompose: 'temp3.db': run $ce1 is a ce run with temperature 4.0, expected none (the database is damaged)"
damaged dup.db "DROP INDEX runs_cell; INSERT INTO runs(method, temperature, seed, status, test_acc, epochs) SELECT method, temperature, seed, status, test_acc, epochs FROM runs WHERE id = $id" \
	4 "bvtool decompose: 'dup.db': runs $id and $(($(q fresh.db "SELECT max(id) FROM runs") + 1)) are both kd T=2 seed 2 (the database is damaged)"
damaged acc1.db "UPDATE metrics SET test_acc = NULL WHERE run_id = $id AND epoch = 3" \
	4 "bvtool decompose: 'acc1.db': run $id epoch 3 has test_acc NULL in metrics, expected a number 0..1 (the database is damaged)"
damaged acc2.db "UPDATE metrics SET test_acc = 9e999 WHERE run_id = $id AND epoch = 3" \
	4 "bvtool decompose: 'acc2.db': run $id epoch 3 has test_acc Inf in metrics, expected a number 0..1 (the database is damaged)"
damaged acc3.db "UPDATE runs SET test_acc = NULL WHERE id = $id" \
	4 "bvtool decompose: 'acc3.db': run $id is done but its test_acc is NULL, expected a number 0..1 (the database is damaged)"
damaged inbag1.db "UPDATE inbag SET count = -1 WHERE seed = 2 AND sample_idx = 7" \
	4 "bvtool decompose: 'inbag1.db': seed 2 has in-bag count -1 for train sample 7, expected a whole number >= 0 (the database is damaged)" --split oob
damaged inbag2.db "UPDATE inbag SET count = 4294967296 WHERE seed = 2 AND sample_idx = 7" \
	4 "bvtool decompose: 'inbag2.db': seed 2 has in-bag count 4294967296 for train sample 7, expected a whole number >= 0 (the database is damaged)" --split oob
damaged inbag3.db "DELETE FROM inbag WHERE seed = 3 AND sample_idx = 1999" \
	4 "bvtool decompose: database 'inbag3.db' holds 1999 in-bag counts for seed 3, the data has 2000" --split oob

# --- one decomposition is one transaction (D8): a correlation step that fails
# leaves sample_stats, decompositions and correlations as they were
cp a.db corr.db
refuse_rows corr.db correlations 0
before=$(sums corr.db)
expect 6 "bvtool decompose: database 'corr.db': CHECK constraint failed: refused_by_a_test_check" "$bv" decompose --db corr.db --criterion teacher --epoch last --bootstrap 0
assert "a failed correlation step leaves every table as it was" [ "$(sums corr.db)" = "$before" ]
# ... and so does a kill -9 there (after the statistics, during the correlation)
# or earlier, while the rows are written
for when in '^T=1 ' '^identity check'; do
	cp a.db kill.db
	before=$(sums kill.db)
	"$bv" decompose --db kill.db --criterion teacher --bootstrap 1000000 >kill.out 2>&1 &
	pid=$!
	i=0
	while ! grep -q "$when" kill.out && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
	kill -9 $pid
	wait $pid || true
	assert "kill -9 at '$when' happened during decompose" grep -q "$when" kill.out
	assert "kill -9 at '$when': integrity_check ok" [ "$(q kill.db "PRAGMA integrity_check")" = ok ]
	assert "kill -9 at '$when': the tables are as before" [ "$(sums kill.db)" = "$before" ]
done

# --- report escapes database text (D11): JSON stays valid, CSV fields are
# quoted (RFC 4180), a Markdown cell never breaks its table; NaN/Inf is null
cp a.db j.db
sqlite3 j.db "UPDATE decompositions SET criterion = 'b\"v' WHERE split = 'test'"
run "$bv" report --db j.db --format json
assert "report --format json with a criterion b\"v exits 0" [ "$status" = 0 ]
assert "... and prints valid JSON" python3 -m json.tool "$out"
assert "... holding the criterion as it is" python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert any(r["criterion"] == "b\"v" for r in d["regularization"])' "$out"
cp a.db h.db
# a method with a comma, quotes, a pipe, a newline, a tab, a backslash and an invalid UTF-8 byte
sqlite3 h.db "UPDATE sample_stats SET method = 'k,d|\"x' || char(10) || '| y' || char(9) || '\\' || CAST(X'FF' AS TEXT) WHERE method = 'kd' AND temperature = 4; UPDATE sample_stats SET temperature = 9e999 WHERE temperature = 2; UPDATE decompositions SET temperature = 9e999 WHERE temperature = 2"
run "$bv" report --db h.db --format json
assert "report --format json of hostile text exits 0" [ "$status" = 0 ]
assert "... and prints valid JSON" python3 -m json.tool "$out"
assert "... with every character kept or replaced, an Inf temperature as null" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert any(r["method"] == "k,d|\"x\n| y\t\\\ufffd" for r in d["regularization"]), d["regularization"]
assert any(r["temperature"] is None for r in d["regularization"])' "$out"
run "$bv" report --db h.db --format csv
assert "report --format csv of hostile text exits 0" [ "$status" = 0 ]
assert "... every record has 5 fields and the method comes back whole" python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8", errors="surrogateescape")))
assert all(len(r) == 5 for r in rows), [r for r in rows if len(r) != 5]
assert any(r[1].startswith("k,d|\"x\n| y\t\\") for r in rows)' "$out"
run "$bv" report --db h.db
assert "report (md) of hostile text exits 0" [ "$status" = 0 ]
assert "... no line is injected into a table" [ "$(grep -c '^| y' "$out")" = 0 ]
assert "... every regularization row has its 9 cells" [ "$(sed -n '/^## Regularization/,/^## Correlation/p' "$out" | grep '^|' | sed 's/\\|//g' | awk -F'|' 'NF != 11' | wc -l)" = 0 ]

# --- report --out FILE: written atomically, nothing left by a failure
run "$bv" report --db a.db --format json --out r.json
assert "report --out exits 0" [ "$status" = 0 ]
assert "... and prints nothing" [ ! -s "$out" ]
"$bv" report --db a.db --format json >r.stdout.json
assert "report --out writes what stdout gets" cmp -s r.json r.stdout.json
cp a.db bad.db
sqlite3 bad.db "UPDATE runs SET test_acc = NULL WHERE id = $id"
expect 4 "bvtool report: 'bad.db': run $id is done but its test_acc is NULL, expected a number 0..1 (the database is damaged)" "$bv" report --db bad.db --out bad.md
assert "a failed report --out leaves no file and no temporary" [ -z "$(ls | grep '^bad\.md')" ]
sum_before=$(cksum <r.json)
expect 4 "bvtool report: 'bad.db': run $id is done but its test_acc is NULL, expected a number 0..1 (the database is damaged)" "$bv" report --db bad.db --format json --out r.json
assert "a failed report --out keeps the earlier file" [ "$(cksum <r.json)" = "$sum_before" ]
mkdir -p outdir
expect 3 "bvtool report: 'outdir' is not a regular file; refusing to replace it" "$bv" report --db a.db --out outdir
expect_sub 3 "bvtool report: cannot write 'nodir/r.md'" "$bv" report --db a.db --out nodir/r.md
# other damage report reads: a status it does not know, duplicate runs
cp a.db bad2.db
sqlite3 bad2.db "PRAGMA ignore_check_constraints = 1; UPDATE runs SET status = 'weird' WHERE id = $id"
expect 4 "bvtool report: 'bad2.db': run $id has status 'weird', expected pending, running, done or failed (the database is damaged)" "$bv" report --db bad2.db
cp a.db bad3.db
sqlite3 bad3.db "DROP INDEX runs_cell; INSERT INTO runs(method, temperature, seed, status, test_acc, epochs) SELECT method, temperature, seed, status, test_acc, epochs FROM runs WHERE id = $id"
expect 4 "bvtool report: 'bad3.db': runs $id and $(($(q a.db "SELECT max(id) FROM runs") + 1)) are both kd T=2 seed 2 (the database is damaged)" "$bv" report --db bad3.db
cp a.db bad4.db
sqlite3 bad4.db "UPDATE correlations SET pearson_r = 'abc' WHERE method = 'kd'"
expect 4 "bvtool report: 'bad4.db': correlations row (kd, test, 3): pearson_r is 'abc', expected a number or NULL (the database is damaged)" "$bv" report --db bad4.db

cp a.db bad5.db
sqlite3 bad5.db "UPDATE sample_stats SET bias = 'x' WHERE method = 'wsl' AND sample_idx = 7 AND temperature = 2 AND epoch = 3 AND split = 'test'"
expect 4 "bvtool report: 'bad5.db': sample_stats row (2.0, 3, test, wsl, 7): bias, variance and loss must be numbers, regularization 0, 1 or NULL (the database is damaged)" "$bv" report --db bad5.db
cp a.db bad6.db
sqlite3 bad6.db "UPDATE metrics SET test_acc = 'zz' WHERE run_id = $id AND epoch = 1"
expect 4 "bvtool report: 'bad6.db': run $id has a test_acc in metrics that is not a number 0..1 (the database is damaged)" "$bv" report --db bad6.db

# the samples of an epoch in two halves on two threads give the same bits as
# one pass on one CPU (taskset -c 0: decompose sees one CPU and does not split)
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -gt 1 ]; then
	cp fresh.db one.db
	cp fresh.db two.db
	taskset -c 0 "$bv" decompose --db one.db --split oob >/dev/null
	"$bv" decompose --db two.db --split oob >/dev/null
	taskset -c 0 "$bv" decompose --db one.db >/dev/null
	"$bv" decompose --db two.db >/dev/null
	rows="SELECT temperature, epoch, split, method, sample_idx, quote(bias), quote(variance), quote(loss), regularization, n_seeds, quote(p_true), quote(acc), quote(wsl_weight) FROM sample_stats ORDER BY 1, 2, 3, 4, 5"
	assert "two threads = one CPU, bit for bit ($(q one.db "SELECT count(*) FROM sample_stats") rows)" \
		[ "$(q one.db "$rows" | cksum)" = "$(q two.db "$rows" | cksum)" ]
fi

cd /
rm -rf "$t"
finish
