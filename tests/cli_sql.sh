#!/bin/sh
# The bvtool_sql extension from the outside, as a researcher's client sees it:
# loaded into the real sqlite3 shell and into Python's sqlite3 on a small
# collected, decomposed database. Every recipe of docs/sql.md against bvtool
# decompose's sample_stats and NumPy (tests/sql_recipes.py, both clients), the
# GROUP BY plan without a sort, bv_predictions against the predictions view,
# loading by a relative path, the errors a client sees, and the functions on
# bvtool's own connections.
# Needs BVTOOL, BV_SQLEXT (build/bvtool_sql.so), BV_TMP, sqlite3, /usr/bin/python3
# with NumPy, and Fashion-MNIST.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
src=$(cd "$(dirname "$0")/.." && pwd)
ext=${BV_SQLEXT%.so}
t=$BV_TMP/cli_sql.$$
mkdir -p "$t"
cd "$t"
sq() { sqlite3 -bail -cmd ".load $ext" "$@"; }

G="--train-subset 2000 --teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 3"
"$bv" collect --db a.db $G --seeds 3 --temps 2,4 >/dev/null
"$bv" decompose --db a.db --epoch all >/dev/null

# --- every recipe, through Python's sqlite3 and the sqlite3 shell
run /usr/bin/python3 "$src/tests/sql_recipes.py" "$BV_SQLEXT" a.db "$src/docs/sql.md"
cat "$out"
assert "tests/sql_recipes.py passes (status $status): $(tail -n 3 "$err")" [ "$status" = 0 ]

# --- GROUP BY sample_idx over bv_predictions needs no sort; over the view it does
plan=$(sq a.db "EXPLAIN QUERY PLAN SELECT sample_idx, bv_variance(logits) FROM bv_predictions
  WHERE run_id IN (SELECT id FROM runs WHERE method = 'kd') AND epoch = 3 AND split = 'test'
  GROUP BY sample_idx")
assert "bv_predictions' GROUP BY has no temporary B-tree: $plan" sh -c "! echo \"\$1\" | grep -q 'TEMP B-TREE'" - "$plan"
plan=$(sq a.db "EXPLAIN QUERY PLAN SELECT sample_idx, bv_variance(logits) FROM predictions
  WHERE run_id IN (SELECT id FROM runs WHERE method = 'kd') AND epoch = 3 AND split = 'test'
  GROUP BY sample_idx")
assert "the view's GROUP BY sorts (what docs/sql.md warns of)" sh -c "echo \"\$1\" | grep -q 'TEMP B-TREE'" - "$plan"

# --- bv_predictions holds the predictions view's rows, labels beside them
a=$(sq a.db "SELECT count(*), sum(length(logits)), total(sample_idx), sum(label) FROM bv_predictions")
b=$(sq a.db "SELECT count(*), sum(length(p.logits)), total(p.sample_idx), sum(s.label)
  FROM predictions p JOIN samples s USING (split, sample_idx)")
assert "bv_predictions and the view agree: $a vs $b" [ "$a" = "$b" ]
a=$(sq a.db "SELECT group_concat(hex(logits)) FROM (SELECT logits FROM bv_predictions
  WHERE run_id = 3 AND epoch = 2 AND split = 'test' AND sample_idx BETWEEN 10 AND 20)")
b=$(sq a.db "SELECT group_concat(hex(logits)) FROM (SELECT logits FROM predictions
  WHERE run_id = 3 AND epoch = 2 AND split = 'test' AND sample_idx BETWEEN 10 AND 20 ORDER BY sample_idx)")
assert "bv_predictions' bytes are the view's" [ -n "$a" ] && assert "same bytes" [ "$a" = "$b" ]
# the aggregates grouped through the view (slow, on 30 samples) equal those through the table
a=$(sq a.db "SELECT group_concat(v) FROM (SELECT bv_variance(logits) AS v FROM bv_predictions
  WHERE run_id IN (SELECT id FROM runs WHERE method = 'wsl' AND temperature = 2) AND epoch = 3
  AND split = 'test' AND sample_idx < 30 GROUP BY sample_idx)")
b=$(sq a.db "SELECT group_concat(v) FROM (SELECT bv_variance(logits) AS v FROM predictions
  WHERE run_id IN (SELECT id FROM runs WHERE method = 'wsl' AND temperature = 2) AND epoch = 3
  AND split = 'test' AND sample_idx < 30 GROUP BY sample_idx)")
assert "bv_variance over the view equals it over bv_predictions" [ -n "$a" ] && assert "equal" [ "$a" = "$b" ]

# --- loading: by a relative path without .so, and a clear refusal of a wrong one
mkdir -p lib && cp "$BV_SQLEXT" lib/
run sqlite3 -bail -cmd ".load lib/bvtool_sql" a.db "SELECT bv_nclasses(x'0000803f00000040')"
assert "'.load lib/bvtool_sql' works (status $status)" [ "$status" = 0 ] && assert "and bv_nclasses = 2" [ "$(cat "$out")" = 2 ]
run sqlite3 -bail -cmd ".load lib/nothing_here" a.db "SELECT 1"
assert "a wrong path fails" [ "$status" != 0 ]
run /usr/bin/python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.enable_load_extension(True); c.load_extension("lib/bvtool_sql")
print(c.execute("SELECT bv_argmax(bv_logits(?))", ("[0.5, 3, -1]",)).fetchone()[0])' a.db
assert "Python loads it by a relative path (status $status)" [ "$status" = 0 ] && assert "and bv_argmax = 1" [ "$(cat "$out")" = 1 ]

# --- the errors a client sees: one line, naming the function
run sq a.db "SELECT bv_ce(NULL, 1)"
assert "NULL logits is an error" [ "$status" != 0 ] && assert "named: $(cat "$err")" grep -q "bv_ce: argument 1 is NULL, not a logits BLOB" "$err"
run sq a.db "SELECT bv_softmax(logits, 0, -1) FROM bv_predictions LIMIT 1"
assert "T < 0 is an error" grep -q "bv_softmax: argument 3 (the temperature) is -1; it must be finite and > 0" "$err"
run sq a.db "SELECT bv_bias(logits, label) FROM bv_predictions WHERE run_id = 3 AND epoch = 1 AND split = 'test' AND sample_idx < 2"
assert "one group across samples is refused: $(cat "$err")" grep -q "bv_bias: the label changes inside one group" "$err"
sqlite3 bad.db "CREATE TABLE x(a)"
run sq bad.db "SELECT count(*) FROM bv_predictions"
assert "bv_predictions on a non-bvtool file: $(cat "$err")" grep -q "bv_predictions: this database has no bvtool snapshots table" "$err"

cd /
rm -rf "$t"
finish
