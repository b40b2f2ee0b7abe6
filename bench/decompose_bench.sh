#!/bin/sh
# shellcheck disable=SC2086 # $pin (taskset -c 0, or nothing) and $check are split on purpose
# The targets of issue 4 (bvtool decompose), side by side with a NumPy baseline:
#   bench/decompose_bench.sh [BUILD_DIR]      (default: the repository's build/)
# 1. Builds (once; cached in $BV_BENCH_DIR, else in a temporary directory) the
#    database of the target: Fashion-MNIST, 5000 training samples, an mlp:64
#    teacher (2 epochs), mlp:16 students, 16 seeds, ce + kd@4 + wsl@4, 10 epochs,
#    every epoch recorded: 10,000 test samples x 16 seeds x 3 methods x 10
#    classes x 10 epochs.
# 2. Copies it twice (after folding in its WAL), so both programs read the same
#    bytes and the cache stays untouched, then runs REPS times, interleaved, on
#    one core (taskset -c 0):
#      bvtool decompose --db A --temp 4 --bootstrap 0
#      bvtool decompose --db A --temp 4                 (default --bootstrap 200)
#      python3 bench/decompose_numpy.py B               (writes sample_stats_numpy)
#    and then both again on the machine's cores, unpinned (bvtool writes rows on
#    a second thread while it decomposes the next epoch; the NumPy script has
#    one thread), with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1. Wall time of
#    the whole process (start-up and, for Python, the numpy import included).
#    The first run of each program writes into an empty table, the later ones
#    replace the rows of the run before.
# 3. Checks that both wrote the same rows: max |difference| of bias, variance,
#    loss, p_true, acc, wsl_weight, teacher_p_true; differing regularization
#    flags and n_seeds.
# 4. Informational: the bootstrap interval of r needs >= 3 temperatures, so a
#    second database (temps 1,2,4,8, 8 seeds, otherwise the same) is decomposed
#    over all its temperatures with --bootstrap 0 and with the default 200.
# Prints Markdown on stdout; progress and raw timings go to stderr.
# About 1.5 minutes on 2 cores, plus about 20 s for building the databases the
# first time. Needs sqlite3, the time utility and /usr/bin/python3 with numpy.
# Environment: REPS (default 3), BV_BENCH_DIR (keep the databases there).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 1 ]; then
	build=$(cd "$1" && pwd)
else
	build=$(cd "$here/../build" && pwd)
fi
bv=$build/bvtool
py=/usr/bin/python3
reps=${REPS:-3}
if [ ! -x "$bv" ]; then
	echo "decompose_bench.sh: cannot find '$bv': build it first (cmake --build $build)" >&2
	exit 2
fi
if ! "$py" -c 'import numpy' 2>/dev/null; then
	echo "decompose_bench.sh: needs $py with numpy (Debian package python3-numpy)" >&2
	exit 2
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
	echo "decompose_bench.sh: needs the sqlite3 shell (Debian package sqlite3)" >&2
	exit 2
fi
if ! command -v time >/dev/null 2>&1; then
	echo "decompose_bench.sh: needs the time utility (Debian package time)" >&2
	exit 2
fi

say() { echo "$*" >&2; }

if [ -n "${BV_BENCH_DIR:-}" ]; then
	mkdir -p "$BV_BENCH_DIR"
	dir=$(cd "$BV_BENCH_DIR" && pwd)
	tmp=$(mktemp -d "$dir/work.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
else
	dir=$(mktemp -d)
	tmp=$dir/work
	mkdir "$tmp"
	trap 'rm -rf "$dir"' EXIT
fi
trap 'exit 130' INT TERM

if command -v taskset >/dev/null 2>&1; then
	pin="taskset -c 0"
	pinned="pinned to CPU 0 with taskset -c 0"
else
	pin=""
	pinned="NOT pinned: taskset is missing (Debian package util-linux), so the runs may use both cores"
	say "decompose_bench.sh: taskset is missing: running without pinning to one core"
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

minimum() { sort -n | head -n 1; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
runs() { tr '\n' ' ' | sed 's/ $//'; }
calc() { awk "BEGIN { printf \"$1\\n\", $2 }"; }
# run a command, its output to $1; prints its wall time in seconds (0.01 s resolution)
timed() {
	log=$1
	shift
	# "command": the time utility, not the keyword of bash or ksh
	if ! command time -p "$@" >"$log" 2>&1; then
		cat "$log" >&2
		exit 1
	fi
	awk '$1 == "real" { t = $2 } END { print t }' "$log"
}
# collect a database unless it is complete (collect then only reports "all N cells are done")
collect() {
	db=$1
	shift
	say "== database $db ($*)"
	if ! "$bv" collect --db "$db" --train-subset 5000 --teacher mlp:64 --teacher-epochs 2 \
		--student mlp:16 --methods ce,kd,wsl --epochs 10 --jobs 2 "$@" >"$db.log" 2>&1; then
		cat "$db.log" >&2
		exit 1
	fi
	tail -n 1 "$db.log" >&2
	# fold the WAL into the file, so that a plain copy is the whole database
	sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
}

grid=$dir/decompose-grid.db
temps=$dir/decompose-temps.db
collect "$grid" --seeds 16 --temps 4
collect "$temps" --seeds 8 --temps 1,2,4,8

# ---- 1. the target: T = 4, 16 seeds, every epoch
cp "$grid" "$tmp/bv.db"
cp "$grid" "$tmp/np.db"
say "== decompose T=4, 16 seeds, 10 epochs: bvtool (--bootstrap 0, default 200) and NumPy, $reps reps, interleaved"
: >"$tmp/t_bv0"
: >"$tmp/t_bv200"
: >"$tmp/t_np"
: >"$tmp/np_phases"
i=1
while [ "$i" -le "$reps" ]; do
	t=$(timed "$tmp/bv0.log" $pin "$bv" decompose --db "$tmp/bv.db" --temp 4 --bootstrap 0)
	echo "$t" >>"$tmp/t_bv0"
	t2=$(timed "$tmp/bv200.log" $pin "$bv" decompose --db "$tmp/bv.db" --temp 4)
	echo "$t2" >>"$tmp/t_bv200"
	t3=$(timed "$tmp/np.log" $pin "$py" "$here/decompose_numpy.py" "$tmp/np.db")
	echo "$t3" >>"$tmp/t_np"
	grep '^decompose_numpy.py:' "$tmp/np.log" | sed 's/.*rows; //' >>"$tmp/np_phases"
	say "rep $i: bvtool --bootstrap 0 ${t} s, bvtool --bootstrap 200 ${t2} s, numpy ${t3} s ($(tail -n 1 "$tmp/np_phases"))"
	i=$((i + 1))
done
say "== the same, unpinned ($(getconf _NPROCESSORS_ONLN) CPUs), $reps reps, interleaved"
: >"$tmp/t_bv_all"
: >"$tmp/t_np_all"
i=1
while [ "$i" -le "$reps" ]; do
	t=$(timed "$tmp/bv_all.log" "$bv" decompose --db "$tmp/bv.db" --temp 4 --bootstrap 0)
	echo "$t" >>"$tmp/t_bv_all"
	t3=$(timed "$tmp/np_all.log" "$py" "$here/decompose_numpy.py" "$tmp/np.db")
	echo "$t3" >>"$tmp/t_np_all"
	say "rep $i unpinned: bvtool --bootstrap 0 ${t} s, numpy ${t3} s"
	i=$((i + 1))
done

# ---- 2. the same rows?
say "== comparing sample_stats (bvtool) with sample_stats_numpy"
check=$(sqlite3 -separator ' ' "$tmp/bv.db" "ATTACH '$tmp/np.db' AS np;
SELECT (SELECT count(*) FROM main.sample_stats),
       (SELECT count(*) FROM np.sample_stats_numpy),
       count(*),
       printf('%.2e', max(abs(a.bias - b.bias))),
       printf('%.2e', max(abs(a.variance - b.variance))),
       printf('%.2e', max(abs(a.loss - b.loss))),
       sum(a.regularization IS NOT b.regularization),
       sum(a.n_seeds != b.n_seeds),
       printf('%.2e', max(abs(a.p_true - b.p_true))),
       printf('%.2e', max(abs(a.acc - b.acc))),
       printf('%.2e', max(abs(a.wsl_weight - b.wsl_weight))),
       sum((a.wsl_weight IS NULL) != (b.wsl_weight IS NULL)),
       printf('%.2e', max(abs(a.teacher_p_true - b.teacher_p_true)))
FROM main.sample_stats a JOIN np.sample_stats_numpy b
  USING (temperature, epoch, split, method, sample_idx);")
set -- $check
n_bv=$1 n_np=$2 n_both=$3 d_bias=$4 d_var=$5 d_loss=$6 d_reg=$7 d_seeds=$8
d_p=$9
shift 9
d_acc=$1 d_wsl=$2 d_wslnull=$3 d_tp=$4
n_reg=$(sqlite3 "$tmp/bv.db" "SELECT group_concat(method || ' ' || n, ', ') FROM (SELECT method, sum(regularization) AS n FROM sample_stats WHERE epoch = 10 GROUP BY method HAVING n IS NOT NULL)")

# ---- 3. informational: the bootstrap, on 4 temperatures x 8 seeds
cp "$temps" "$tmp/bt.db"
say "== decompose all 4 temperatures, 8 seeds, 10 epochs: --bootstrap 0 and 200, $reps reps, interleaved"
: >"$tmp/t_bt0"
: >"$tmp/t_bt200"
i=1
while [ "$i" -le "$reps" ]; do
	t=$(timed "$tmp/bt0.log" $pin "$bv" decompose --db "$tmp/bt.db" --bootstrap 0)
	echo "$t" >>"$tmp/t_bt0"
	t2=$(timed "$tmp/bt200.log" $pin "$bv" decompose --db "$tmp/bt.db")
	echo "$t2" >>"$tmp/t_bt200"
	say "rep $i: --bootstrap 0 ${t} s, --bootstrap 200 ${t2} s"
	i=$((i + 1))
done
rows_bt=$(sqlite3 "$tmp/bt.db" "SELECT count(*) FROM sample_stats")
boot_line=$(grep -c 'bootstrap 95% interval' "$tmp/bt200.log" || true)

# ---- report
b_bv0=$(minimum <"$tmp/t_bv0") m_bv0=$(median <"$tmp/t_bv0")
b_bv200=$(minimum <"$tmp/t_bv200") m_bv200=$(median <"$tmp/t_bv200")
b_np=$(minimum <"$tmp/t_np") m_np=$(median <"$tmp/t_np")
b_bv_all=$(minimum <"$tmp/t_bv_all") m_bv_all=$(median <"$tmp/t_bv_all")
b_np_all=$(minimum <"$tmp/t_np_all") m_np_all=$(median <"$tmp/t_np_all")
b_bt0=$(minimum <"$tmp/t_bt0") m_bt0=$(median <"$tmp/t_bt0")
b_bt200=$(minimum <"$tmp/t_bt200") m_bt200=$(median <"$tmp/t_bt200")
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
pyver=$("$py" -c 'import sys, numpy, sqlite3; print("Python %d.%d.%d, NumPy %s, SQLite %s (Python)" % (sys.version_info[:3] + (numpy.__version__, sqlite3.sqlite_version)))')

cat <<EOF
Machine: $cpu, $(getconf _NPROCESSORS_ONLN) CPUs; $pyver; $("$bv" --version 2>/dev/null | head -n 1 || echo bvtool). Runs $pinned.
Load average before the report: $(cut -d' ' -f1-3 /proc/loadavg).

Decompose, T = 4: 10000 test samples x 16 seeds x 3 methods (ce, kd, wsl) x 10 classes x 10 epochs,
$n_bv sample_stats rows; $reps runs each, interleaved; wall seconds of the whole process.

| program | best (s) | median (s) | all runs (s) |
|---|--:|--:|---|
| bvtool decompose --temp 4 --bootstrap 0 | $b_bv0 | $m_bv0 | $(runs <"$tmp/t_bv0") |
| bvtool decompose --temp 4 (default --bootstrap 200; 1 temperature, so no bootstrap) | $b_bv200 | $m_bv200 | $(runs <"$tmp/t_bv200") |
| python3 bench/decompose_numpy.py | $b_np | $m_np | $(runs <"$tmp/t_np") |

NumPy / bvtool (--bootstrap 0), one core: $(calc '%.2f' "$b_np / $b_bv0")x on the best runs, $(calc '%.2f' "$m_np / $m_bv0")x on the medians.

Unpinned, on the machine's $(getconf _NPROCESSORS_ONLN) CPUs (bvtool's writer thread on the second):

| program | best (s) | median (s) | all runs (s) |
|---|--:|--:|---|
| bvtool decompose --temp 4 --bootstrap 0 | $b_bv_all | $m_bv_all | $(runs <"$tmp/t_bv_all") |
| python3 bench/decompose_numpy.py | $b_np_all | $m_np_all | $(runs <"$tmp/t_np_all") |

NumPy / bvtool (--bootstrap 0), unpinned: $(calc '%.2f' "$b_np_all / $b_bv_all")x on the best runs, $(calc '%.2f' "$m_np_all / $m_bv_all")x on the medians.
NumPy's own phases (after start-up and imports), run by run:
$(sed 's/^/- /' "$tmp/np_phases")

Same rows: $n_both rows matched of $n_bv (bvtool) and $n_np (NumPy).
max |diff|: bias $d_bias, variance $d_var, loss $d_loss, p_true $d_p, acc $d_acc, wsl_weight $d_wsl, teacher_p_true $d_tp;
differing regularization flags: $d_reg; differing n_seeds: $d_seeds; wsl_weight NULL in one only: $d_wslnull.
Regularization samples at epoch 10 (bvtool): $n_reg.

Informational, the bootstrap: all 4 temperatures (1, 2, 4, 8) x 8 seeds x 3 methods x 10 epochs,
$rows_bt rows; the correlation at $boot_line method(s) with a bootstrap interval.

| program | best (s) | median (s) | all runs (s) |
|---|--:|--:|---|
| bvtool decompose --bootstrap 0 | $b_bt0 | $m_bt0 | $(runs <"$tmp/t_bt0") |
| bvtool decompose (--bootstrap 200) | $b_bt200 | $m_bt200 | $(runs <"$tmp/t_bt200") |

200 bootstrap resamples cost $(calc '%.2f' "$m_bt200 - $m_bt0") s (difference of the medians).
EOF
