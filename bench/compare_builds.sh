#!/bin/sh
# Did a change make bvtool slower? The same commands with the build of an
# earlier revision and with this checkout's, interleaved (A B, then B A), so
# that the load of a shared machine falls on both alike:
#   bench/compare_builds.sh [REV] [BUILD_DIR]   REV default HEAD~1, BUILD_DIR build/
# 1. train   bvtool train --model mlp:64, the 60,000 samples, 2 epochs (the training loop)
# 2. cnn     bvtool train --model cnn-small, 2,000 samples, 1 epoch, --threads 2
# 3. collect a 7-cell grid (ce + kd,wsl at T 2,4,8; 1 seed; 10,000 samples; 3
#            epochs; every epoch recorded) with --jobs 2 and a shared teacher
#            checkpoint: the engine, its workers and the database writes
# 4. decompose --bootstrap 200, and --criterion grad --bootstrap 200, of one
#            database of 3 seeds x ce/kd/wsl at T 1,2,4 (copied fresh each run)
# Prints a Markdown table: the median wall time of each build and their ratio
# (this checkout / REV; below 1 is faster). REPS (default 5) runs of each.
# About 3 minutes on 2 cores. Needs the time utility.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib-rev.sh"
rev_setup compare_builds.sh "${1:-HEAD~1}" "${2:-$here/build}"
reps=${REPS:-5}
command -v time >/dev/null 2>&1 || [ -x /usr/bin/time ] || {
	echo "compare_builds.sh: needs the time utility (Debian package time)" >&2
	exit 2
}
say() { echo "$*" >&2; }
rev_build

# the shared inputs, made once with this checkout's build
cd "$t"
"$new" train --data fashion-mnist --train-subset 2000 --epochs 1 --model mlp:64 --threads 1 --out teacher.ckpt >/dev/null
"$new" collect --db dec.db --data fashion-mnist --train-subset 2000 --teacher mlp:64 --teacher-ckpt teacher.ckpt \
	--student mlp:16 --epochs 3 --seeds 3 --methods ce,kd,wsl --temps 1,2,4 --record-epochs last \
	--jobs 2 >/dev/null
sqlite3 dec.db "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null 2>&1 || true

# run NAME BV: one timed run of case NAME with bvtool BV; prints its wall seconds
run() {
	case $1 in
	train) set -- "$2" train --data fashion-mnist --epochs 2 --model mlp:64 --threads 1 --out x.ckpt ;;
	cnn) set -- "$2" train --data fashion-mnist --train-subset 2000 --epochs 1 --model cnn-small --threads 2 --out x.ckpt ;;
	collect)
		rm -rf c.db c.db-wal c.db-shm c.db.ckpt
		set -- "$2" collect --db c.db --data fashion-mnist --train-subset 10000 --teacher mlp:64 --teacher-ckpt teacher.ckpt \
			--student mlp:64 --epochs 3 --seeds 1 --methods ce,kd,wsl --temps 2,4,8 --record-epochs all --jobs 2
		;;
	decompose)
		cp dec.db d.db
		set -- "$2" decompose --db d.db --bootstrap 200
		;;
	grad)
		cp dec.db d.db
		set -- "$2" decompose --db d.db --criterion grad --bootstrap 200
		;;
	esac
	/usr/bin/time -f %e -o wall "$@" >/dev/null 2>&1
	cat wall
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| case | $rev (s) | this checkout (s) | ratio |"
echo "|---|---:|---:|---:|"
for c in train cnn collect decompose grad; do
	: >"$c.old"
	: >"$c.new"
	i=0
	while [ $i -lt "$reps" ]; do
		if [ $((i % 2)) = 0 ]; then
			run $c "$old" >>"$c.old"
			run $c "$new" >>"$c.new"
		else
			run $c "$new" >>"$c.new"
			run $c "$old" >>"$c.old"
		fi
		i=$((i + 1))
	done
	a=$(median <"$c.old") b=$(median <"$c.new")
	say "$c: $rev $(tr '\n' ' ' <"$c.old")| new $(tr '\n' ' ' <"$c.new")"
	echo "| $c | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }') |"
done
