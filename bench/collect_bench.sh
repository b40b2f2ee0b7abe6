#!/bin/sh
# The three targets of issue 3 (bvtool collect), in one invocation:
#   bench/collect_bench.sh [BUILD_DIR]      (default: the repository's build/)
# 1. Recording cost: the same one-cell collect (ce, seed 1, mlp:64 student,
#    full Fashion-MNIST training set, 10 epochs, a shared mlp:64 teacher
#    checkpoint) with --record-epochs all and with --record-epochs last,
#    interleaved, REPS1 times each, a fresh database each time. Overhead =
#    (best wall all - best wall last) / median student training time
#    (sum of metrics.seconds). Also in-process: the run's time outside its
#    epochs, runs.seconds - sum(metrics.seconds). The same with --record-train
#    (informational).
# 2. Database size per snapshot: (file size with all - file size with last) / 9,
#    after PRAGMA wal_checkpoint(TRUNCATE), over the raw 10000 x 10 x 4 bytes;
#    and the same from the dbstat virtual table when the sqlite3 shell has it.
# 3. --jobs 2 against --jobs 1 on a 14-cell grid (train subset 10000, 2 seeds,
#    ce,kd,wsl at T 2,4,8, 5 epochs), interleaved, REPS3 times each, ratio of
#    median wall times; the snapshots of every database must be byte-identical.
# Prints Markdown tables on stdout; progress and raw timings go to stderr.
# About 2 minutes on 2 cores. Needs sqlite3 and the time utility.
# Environment: REPS1 (default 7) and REPS3 (default 5), the repetitions of 1 and 3.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 1 ]; then
	build=$(cd "$1" && pwd)
else
	build=$(cd "$here/../build" && pwd)
fi
bv=$build/bvtool
reps1=${REPS1:-7}
reps3=${REPS3:-5}
if [ ! -x "$bv" ]; then
	echo "collect_bench.sh: cannot find '$bv': build it first (cmake --build $build)" >&2
	exit 2
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
	echo "collect_bench.sh: needs the sqlite3 shell (Debian package sqlite3)" >&2
	exit 2
fi
if ! command -v time >/dev/null 2>&1; then
	echo "collect_bench.sh: needs the time utility (Debian package time)" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

say() { echo "$*" >&2; }
# median of the numbers on stdin
minimum() { sort -n | head -n 1; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\\n\", $2 }"; }
fresh() { rm -rf "$1" "$1-wal" "$1-shm" "$1.ckpt"; }
# run a command, its output to $1.log; prints its wall time in seconds (0.01 s resolution)
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
# bytes of a database file once its WAL is folded in
dbsize() {
	sqlite3 "$1" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
	wc -c <"$1" | tr -d ' '
}
q() { sqlite3 "$1" "$2"; }

say "== teacher: mlp:64, 1 epoch, full training set"
"$bv" train --model mlp:64 --epochs 1 --out "$tmp/teacher.ckpt" >"$tmp/teacher.log" 2>&1
common="--data fashion-mnist --teacher mlp:64 --teacher-epochs 1 --teacher-ckpt $tmp/teacher.ckpt --student mlp:64"

# ---- 1 and 2: one cell, record all vs last, test split and with --record-train
cell="--methods ce --seeds 1 --epochs 10"
say "== 1. one cell (ce, seed 1, 10 epochs, 60000 samples): record all / last, $reps1 reps"
: >"$tmp/t1"
r=0
while [ "$r" -lt "$reps1" ]; do
	r=$((r + 1))
	if [ $((r % 2)) -eq 1 ]; then order="all last"; else order="last all"; fi
	for tr in test train; do
		for e in $order; do
			v=$e-$tr
			db=$tmp/$v.db
			fresh "$db"
			flag=""
			[ $tr = train ] && flag=--record-train
			# shellcheck disable=SC2086
			w=$(timed "$tmp/$v.log" "$bv" collect --db "$db" $common $cell --record-epochs $e $flag)
			# training time of the student (sum of its epochs) and its time outside them
			q "$db" "SELECT sum(m.seconds), r.seconds - sum(m.seconds)
				FROM runs r JOIN metrics m ON m.run_id = r.id WHERE r.method = 'ce';" >"$tmp/q"
			IFS='|' read -r train outside <"$tmp/q"
			echo "$v $w $train $outside" >>"$tmp/t1"
			say "rep $r $v: wall ${w}s  train $(calc '%.3f' "$train")s  outside epochs $(calc '%.4f' "$outside")s"
			if [ "$r" -eq 1 ]; then
				dbsize "$db" >"$tmp/$v.size"
				if q "$db" "SELECT 1 FROM dbstat LIMIT 1;" >/dev/null 2>&1; then
					q "$db" "SELECT sum(pgsize) FROM dbstat WHERE name = 'snapshots' OR name IN
						(SELECT name FROM sqlite_schema WHERE type = 'index'
						 AND tbl_name = 'snapshots');" >"$tmp/$v.dbstat"
				fi
				q "$db" "SELECT count(*) FROM snapshots s JOIN runs r ON r.id = s.run_id
					WHERE r.method = 'ce';" >"$tmp/$v.nsnap"
			fi
		done
	done
done
# col VARIANT COLUMN STATISTIC
col() { awk -v v="$1" -v c="$2" '$1 == v { print $c }' "$tmp/t1" | $3; }
w_all_test=$(col all-test 2 minimum)
w_last_test=$(col last-test 2 minimum)
w_all_train=$(col all-train 2 minimum)
w_last_train=$(col last-train 2 minimum)
wm_all_test=$(col all-test 2 median)
wm_last_test=$(col last-test 2 median)
o_all_test=$(col all-test 4 median | awk '{ printf "%.4f", $1 }')
o_last_test=$(col last-test 4 median | awk '{ printf "%.4f", $1 }')
o_all_train=$(col all-train 4 median | awk '{ printf "%.4f", $1 }')
o_last_train=$(col last-train 4 median | awk '{ printf "%.4f", $1 }')
ttrain=$(awk '$1 ~ /-test$/ { print $3 }' "$tmp/t1" | median | awk '{ printf "%.3f", $1 }')
ttrain_rt=$(awk '$1 ~ /-train$/ { print $3 }' "$tmp/t1" | median | awk '{ printf "%.3f", $1 }')
nsnap_all=$(cat "$tmp/all-test.nsnap")
nsnap_last=$(cat "$tmp/last-test.nsnap")
nextra=$((nsnap_all - nsnap_last))
ov_wall=$(calc '%.2f' "100 * ($w_all_test - $w_last_test) / $ttrain")
ov_wallm=$(calc '%.2f' "100 * ($wm_all_test - $wm_last_test) / $ttrain")
ov_in=$(calc '%.2f' "100 * ($o_all_test - $o_last_test) / $ttrain")
snap_wall=$(calc '%.2f' "1000 * ($w_all_test - $w_last_test) / $nextra")
snap_in=$(calc '%.2f' "1000 * ($o_all_test - $o_last_test) / $nextra")
ov_wall_rt=$(calc '%.1f' "100 * ($w_all_train - $w_last_train) / $ttrain_rt")
ov_in_rt=$(calc '%.1f' "100 * ($o_all_train - $o_last_train) / $ttrain_rt")
snap_in_rt=$(calc '%.1f' "1000 * ($o_all_train - $o_last_train) / $nextra")
met() { awk "BEGIN { print ($1) ? \"yes\" : \"no\" }"; }

raw=$((10000 * 10 * 4))
raw_rt=$(((10000 + 60000) * 10 * 4))
size_all=$(cat "$tmp/all-test.size")
size_last=$(cat "$tmp/last-test.size")
size_ratio=$(calc '%.3f' "($size_all - $size_last) / $nextra / $raw")
size_ratio_rt=$(calc '%.3f' "($(cat "$tmp/all-train.size") - $(cat "$tmp/last-train.size")) / $nextra / $raw_rt")
if [ -s "$tmp/all-test.dbstat" ]; then
	dbstat_ratio=$(calc '%.3f' "($(cat "$tmp/all-test.dbstat") - $(cat "$tmp/last-test.dbstat")) / $nextra / $raw")
else
	dbstat_ratio=""
fi

# ---- 3: a 14-cell grid, --jobs 1 vs --jobs 2
grid="--train-subset 10000 --seeds 2 --methods ce,kd,wsl --temps 2,4,8 --epochs 5"
say "== 3. 14-cell grid, --jobs 1 / --jobs 2, $reps3 reps"
: >"$tmp/t3"
r=0
while [ "$r" -lt "$reps3" ]; do
	r=$((r + 1))
	if [ $((r % 2)) -eq 1 ]; then order="1 2"; else order="2 1"; fi
	for j in $order; do
		db=$tmp/grid$j.db
		fresh "$db"
		# shellcheck disable=SC2086
		w=$(timed "$tmp/grid$j.log" "$bv" collect --db "$db" $common $grid --jobs $j)
		ncells=$(q "$db" "SELECT count(*) FROM runs WHERE method != 'teacher' AND status = 'done';")
		cells_s=$(q "$db" "SELECT sum(seconds) FROM runs WHERE method != 'teacher';")
		sum=$(q "$db" "SELECT r.method, IFNULL(r.temperature, ''), r.seed, s.epoch, s.split, hex(s.logits)
			FROM snapshots s JOIN runs r ON r.id = s.run_id ORDER BY 1, 2, 3, 4, 5;" | cksum | awk '{ print $1 "/" $2 }')
		echo "$j $w $cells_s $sum" >>"$tmp/t3"
		say "rep $r jobs $j: wall ${w}s  ($ncells cells, sum of their runs.seconds $(calc '%.2f' "$cells_s")s)  snapshots cksum/bytes $sum"
	done
done
w_j1=$(awk '$1 == 1 { print $2 }' "$tmp/t3" | median)
w_j2=$(awk '$1 == 2 { print $2 }' "$tmp/t3" | median)
c_j1=$(awk '$1 == 1 { print $3 }' "$tmp/t3" | median | awk '{ printf "%.2f", $1 }')
c_j2=$(awk '$1 == 2 { print $3 }' "$tmp/t3" | median | awk '{ printf "%.2f", $1 }')
jratio=$(calc '%.3f' "$w_j2 / $w_j1")
gap_j1=$(calc '%.2f' "($w_j1 - $c_j1) / $ncells")
sums=$(awk '{ print $4 }' "$tmp/t3" | sort -u)
nsums=$(echo "$sums" | wc -l | tr -d ' ')
sum_j1=$(awk '$1 == 1 { print $4; exit }' "$tmp/t3")
sum_j2=$(awk '$1 == 2 { print $4; exit }' "$tmp/t3")
if [ "$nsums" -eq 1 ]; then identical=yes; else identical=no; fi

cat <<EOF
| target | measured | limit | met |
|---|--:|--:|---|
| 1. recording cost, test split, every epoch: (wall all - wall last, best of $reps1) / student training time | ${ov_wall}% | <= 5% | $(met "$ov_wall <= 5") |
| 1. the same with the median walls | ${ov_wallm}% | <= 5% | $(met "$ov_wallm <= 5") |
| 1. the same, in-process: time outside the epochs (runs.seconds - sum of metrics.seconds), all - last (medians), / training time | ${ov_in}% | <= 5% | $(met "$ov_in <= 5") |
| 2. database growth per 10000 x 10 test snapshot (file size, all - last, / $nextra), / raw floats | ${size_ratio} x | <= 1.5 x | $(met "$size_ratio <= 1.5") |
EOF
if [ -n "$dbstat_ratio" ]; then
	echo "| 2. the same from dbstat (pages of the snapshots b-tree, all - last, / $nextra), / raw floats | ${dbstat_ratio} x | <= 1.5 x | $(met "$dbstat_ratio <= 1.5") |"
fi
cat <<EOF
| 3. 14-cell grid: wall --jobs 2 / wall --jobs 1 (medians of $reps3) | ${jratio} | <= 0.6 | $(met "$jratio <= 0.6") |
| 3. snapshots byte-identical, every database of both --jobs | $nsums distinct cksum (jobs 1 $sum_j1, jobs 2 $sum_j2) | 1 | $identical |

Details (runs interleaved; times are medians, walls of 1 best / median):

| quantity | value |
|---|--:|
| student training time (sum of metrics.seconds), test split only | ${ttrain} s |
| collect wall, record all / last (test split), best | ${w_all_test} / ${w_last_test} s |
| collect wall, record all / last (test split), median | ${wm_all_test} / ${wm_last_test} s |
| time outside the epochs, record all / last (test split) | ${o_all_test} / ${o_last_test} s |
| per test snapshot, from best wall / in-process ($nextra snapshots) | ${snap_wall} / ${snap_in} ms |
| --record-train: training time | ${ttrain_rt} s |
| --record-train: collect wall, record all / last, best | ${w_all_train} / ${w_last_train} s |
| --record-train: time outside the epochs, record all / last | ${o_all_train} / ${o_last_train} s |
| --record-train: overhead, best wall / in-process (informational) | ${ov_wall_rt}% / ${ov_in_rt}% |
| --record-train: per epoch recorded (60000-sample eval pass + both snapshots), in-process | ${snap_in_rt} ms |
| --record-train: growth per epoch recorded (test + train), / raw floats | ${size_ratio_rt} x |
| database file, record all / last (test split, one cell + teacher) | ${size_all} / ${size_last} bytes |
| grid wall, --jobs 1 / --jobs 2 | ${w_j1} / ${w_j2} s |
| grid, sum of the cells' runs.seconds, --jobs 1 / --jobs 2 | ${c_j1} / ${c_j2} s |
| grid, --jobs 1: wall not spent in a cell's run (wall - sum of runs.seconds), per cell | ${gap_j1} s |
EOF
