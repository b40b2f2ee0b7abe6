#!/bin/sh
# collect --mpi against collect --jobs (issue 14): the same grid collected by
#   mpirun -n 2 bvtool collect --mpi      (two ranks; rank 0 also schedules, and merges at the end)
#   bvtool collect --jobs 2               (two forked workers)
# on 2 cores, interleaved, REPS times each (default 3), a fresh database (and shard
# directory) each time; cells per second of each run's wall time, end to end (plan,
# teacher's logits, cells, and for --mpi the merge), their medians and the ratio
# mpi / jobs (issue 14's target: >= 0.9). The grid: full Fashion-MNIST, mlp:64
# students, ce,kd,wsl at T 1,2,4,8, 8 seeds (72 cells), 5 epochs, a shared mlp:64
# teacher checkpoint (trained once, not timed). Every run's snapshots must equal the
# first's byte for byte.
#   bench/mpi_bench.sh [BUILD_DIR]      (default: the repository's build/)
# Prints a Markdown table on stdout; progress and raw timings go to stderr. About
# 5 minutes on 2 cores. Needs mpirun (openmpi-bin), sqlite3 and the time utility.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 1 ]; then
	build=$(cd "$1" && pwd)
else
	build=$(cd "$here/../build" && pwd)
fi
bv=$build/bvtool
reps=${REPS:-3}
for tool in mpirun sqlite3 time; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "mpi_bench.sh: needs $tool (Debian packages openmpi-bin, sqlite3, time)" >&2
		exit 2
	fi
done
if [ ! -x "$bv" ]; then
	echo "mpi_bench.sh: cannot find '$bv': build it first (cmake --build $build)" >&2
	exit 2
fi
# Open MPI refuses root without the flag
asroot=
[ "$(id -u)" = 0 ] && asroot=--allow-run-as-root

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

say() { echo "$*" >&2; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\\n\", $2 }"; }
fresh() { rm -rf "$tmp/run.db" "$tmp/run.db-wal" "$tmp/run.db-shm" "$tmp/run.db.ckpt" "$tmp/shards"; }
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
# every snapshot keyed by its cell, whatever the run ids (tests/lib.sh's snapshots_sum)
snapshots_sum() {
	sqlite3 "$1" "SELECT r.method, IFNULL(r.temperature, ''), r.seed, s.epoch, s.split, hex(s.logits)
	              FROM snapshots s JOIN runs r ON r.id = s.run_id ORDER BY 1, 2, 3, 4, 5" | cksum
}

say "== teacher: mlp:64, 1 epoch, full training set (not timed)"
"$bv" train --model mlp:64 --epochs 1 --out "$tmp/teacher.ckpt" >"$tmp/teacher.log" 2>&1
grid="--data fashion-mnist --teacher mlp:64 --teacher-epochs 1 --teacher-ckpt $tmp/teacher.ckpt
      --student mlp:64 --methods ce,kd,wsl --temps 1,2,4,8 --seeds 8 --epochs 5"
cells=72

: >"$tmp/jobs"
: >"$tmp/mpi"
ref=
check() {
	sum=$(snapshots_sum "$tmp/run.db")
	n=$(sqlite3 "$tmp/run.db" "SELECT count(*) FROM runs WHERE status = 'done' AND method != 'teacher'")
	if [ "$n" != $cells ]; then
		say "mpi_bench.sh: $1 left $n of $cells cells done"
		exit 1
	fi
	if [ -z "$ref" ]; then
		ref=$sum
	elif [ "$sum" != "$ref" ]; then
		say "mpi_bench.sh: $1's snapshots differ from the first run's"
		exit 1
	fi
}
for rep in $(seq 1 "$reps"); do
	# alternate which goes first, so that a drift of the machine's speed hits both
	for mode in $(if [ $((rep % 2)) = 1 ]; then echo jobs mpi; else echo mpi jobs; fi); do
		fresh
		cd "$tmp"
		if [ $mode = jobs ]; then
			s=$(timed "$tmp/log" "$bv" collect --db run.db $grid --jobs 2)
		else
			s=$(timed "$tmp/log" mpirun $asroot -n 2 "$bv" collect --mpi --shard-dir shards --db run.db $grid)
		fi
		cd - >/dev/null
		check $mode
		echo "$s" >>"$tmp/$mode"
		say "rep $rep $mode: ${s}s, $(calc '%.3f' "$cells / $s") cells/s"
	done
done

jobs=$(median <"$tmp/jobs")
mpi=$(median <"$tmp/mpi")
echo "| command | wall s (median of $reps) | cells/s | against --jobs 2 |"
echo "|---|---|---|---|"
echo "| bvtool collect --jobs 2 | $jobs | $(calc '%.3f' "$cells / $jobs") | 1 |"
echo "| mpirun -n 2 bvtool collect --mpi | $mpi | $(calc '%.3f' "$cells / $mpi") | $(calc '%.3f' "$jobs / $mpi") |"
echo
echo "raw wall times (s): --jobs 2: $(tr '\n' ' ' <"$tmp/jobs"); --mpi: $(tr '\n' ' ' <"$tmp/mpi")"
