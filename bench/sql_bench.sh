#!/bin/sh
# The target of issue 13: the decomposition by the SQL aggregates of the
# bvtool_sql extension against bvtool decompose, on the same rows:
#   bench/sql_bench.sh [BUILD_DIR]        (default: the repository's build/)
# 1. Writes (once, kept in $BV_BENCH_DIR, default /tmp/bv-sql-bench) the layout
#    of bench/import_gen.py at 10,000 test samples x 10 classes, 16 seeds, one
#    recorded epoch, keeps its ce and kd (T = 4) runs (2 x 16 x 10,000 = 320,000
#    prediction rows: the fewest decompose takes, as it needs ce and one soft
#    method) and imports them into a database on tmpfs.
# 2. REPS times (default 15), interleaved: `bvtool decompose --temp 4` (bias,
#    variance and loss of ce and kd per sample, kd's regularization flags,
#    written to sample_stats), and the sqlite3 shell computing the same numbers
#    with bv_bias, bv_variance and bv_loss over bv_predictions (docs/sql.md's
#    recipes (1) and (2) in one statement, into a TEMP table). Wall time of
#    each whole process (start, load, compute, write), by date +%s%N.
#    Then both again pinned to one core (taskset -c 0), since decompose splits
#    samples over two threads and SQLite runs one.
# Prints Markdown on stdout (medians, best, ratio of the medians); raw
# timings on stderr. Needs /usr/bin/python3 with numpy, sqlite3, taskset.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bv=$build/bvtool
ext=$build/bvtool_sql
py=/usr/bin/python3
reps=${REPS:-15}
dir=${BV_BENCH_DIR:-/tmp/bv-sql-bench}
[ -x "$bv" ] && [ -f "$ext.so" ] || { echo "sql_bench.sh: build $bv and $ext.so first" >&2; exit 2; }
say() { echo "$*" >&2; }
mkdir -p "$dir"
shm=$(mktemp -d /dev/shm/bv-sql.XXXXXX)
trap 'rm -rf "$shm"' EXIT
trap 'exit 130' INT TERM

say "writing the layout in $dir/layout (once)"
$py "$here/import_gen.py" "$dir/layout" --seeds 16 --epochs 1 --n 10000 --classes 10
# the ce and kd runs only, beside the arrays
$py - "$dir/layout" "$shm/layout" <<'PY'
import json, os, sys
src, dst = sys.argv[1:3]
os.makedirs(dst)
m = json.load(open(f"{src}/manifest.json"))
m["runs"] = [r for r in m["runs"] if r["method"] in ("ce", "kd")]
for f in os.listdir(src):
    if f.endswith(".npy"):
        os.symlink(f"{src}/{f}", f"{dst}/{f}")
json.dump(m, open(f"{dst}/manifest.json", "w"))
PY
"$bv" import --quiet --db "$shm/b.db" "$shm/layout" >/dev/null
rows=$(sqlite3 "$shm/b.db" "SELECT sum(n) FROM snapshots sn JOIN runs r ON r.id = sn.run_id WHERE r.method != 'teacher'")

cat >"$shm/decompose.sql" <<'SQL'
CREATE TEMP TABLE out AS
WITH ce AS (
  SELECT p.sample_idx, bv_bias(p.logits, p.label) AS bias, bv_variance(p.logits) AS variance,
         bv_loss(p.logits, p.label) AS loss
  FROM bv_predictions p
  WHERE p.run_id IN (SELECT id FROM runs WHERE method = 'ce' AND status = 'done')
    AND p.epoch = 1 AND p.split = 'test'
  GROUP BY p.sample_idx),
kd AS (
  SELECT p.sample_idx, bv_bias(p.logits, p.label) AS bias, bv_variance(p.logits) AS variance,
         bv_loss(p.logits, p.label) AS loss
  FROM bv_predictions p
  WHERE p.run_id IN (SELECT id FROM runs WHERE method = 'kd' AND temperature = 4 AND status = 'done')
    AND p.epoch = 1 AND p.split = 'test'
  GROUP BY p.sample_idx)
SELECT 'ce' AS method, ce.*, NULL AS regularization FROM ce
UNION ALL
SELECT 'kd', kd.*, kd.bias > ce.bias AND kd.variance < ce.variance FROM kd JOIN ce USING (sample_idx);
SQL

# the SQL's rows equal decompose's, before anything is timed
"$bv" decompose --db "$shm/b.db" --temp 4 >/dev/null
check=$(sqlite3 -cmd ".load $ext" "$shm/b.db" ".read $shm/decompose.sql" "SELECT count(*),
  max(abs(o.bias - s.bias)), max(abs(o.variance - s.variance)), max(abs(o.loss - s.loss)),
  sum(o.regularization IS NOT s.regularization)
  FROM out o JOIN sample_stats s ON s.method = o.method AND s.sample_idx = o.sample_idx
  AND s.split = 'test' AND s.epoch = 1")
say "SQL vs sample_stats (rows, max |diff| bias, variance, loss, flags differing): $check"

# ms CMD...: the wall time of CMD in milliseconds
ms() {
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}
dec_cmd() { $pin "$bv" decompose --db "$shm/b.db" --temp 4; }
sql_cmd() { $pin sqlite3 -bail -cmd ".load $ext" "$shm/b.db" ".read $shm/decompose.sql"; }
# median and best of microsecond timings, in ms
stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f %.1f", a[int((NR + 1) / 2)] / 1000, a[1] / 1000 }'; }

printf '| side | cores | median ms | best ms | SQL / decompose (medians) |\n|---|---|---|---|---|\n'
for mode in default pinned; do
	pin=""
	[ "$mode" = pinned ] && pin="taskset -c 0"
	d="" s=""
	for r in $(seq "$reps"); do
		d="$d $(ms dec_cmd)"
		s="$s $(ms sql_cmd)"
	done
	say "$mode decompose us:$d"
	say "$mode sql us:$s"
	set -- $d
	ds=$(stats "$@")
	set -- $s
	ss=$(stats "$@")
	cores=$([ "$mode" = pinned ] && echo 1 || nproc)
	ratio=$(echo "$ss $ds" | awk '{ printf "%.2f", $1 / $3 }')
	echo "| bvtool decompose --temp 4 | $cores | ${ds% *} | ${ds#* } | |"
	echo "| sqlite3 + bvtool_sql aggregates | $cores | ${ss% *} | ${ss#* } | $ratio |"
done
echo
echo "$rows prediction rows (ce and kd, 16 seeds, 10,000 samples, K = 10); SQL vs decompose: $check"
