#!/bin/sh
# The merge target of issue 14 (>= 200 MB/s of snapshots):
#   bench/merge_bench.sh [BUILD_DIR]        (default: the repository's build/)
# 1. Collects (once, kept in $BV_BENCH_DIR, default /tmp/bv-merge-bench) a grid in
#    4 shards (collect --shard I/4 --jobs 2) on the whole of Fashion-MNIST with
#    the training split recorded: 4 seeds x ce, kd T=2, kd T=4, 10 recorded epochs
#    of 2.8 MB (70,000 samples x 10 classes), 120 snapshots, 336 MB.
# 2. Reads the shards once so they sit in the page cache, then REPS times merges
#    them into a new database (a) on tmpfs (/dev/shm: merge's own speed) and (b)
#    in $BV_BENCH_DIR (a real file system: every byte reaches the disk, twice in
#    WAL mode; dd conv=fsync gives the disk's write speed beside it). Wall time of
#    the whole process; MB/s = snapshot bytes merged / wall time.
# Prints Markdown on stdout, raw timings on stderr. Needs the time utility.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bv=$build/bvtool
reps=${REPS:-5}
dir=${BV_BENCH_DIR:-/tmp/bv-merge-bench}
[ -x "$bv" ] || { echo "merge_bench.sh: build $bv first" >&2; exit 2; }
command -v time >/dev/null 2>&1 || { echo "merge_bench.sh: needs the time utility (Debian package time)" >&2; exit 2; }
say() { echo "$*" >&2; }
mkdir -p "$dir"
shm=$(mktemp -d /dev/shm/bv-merge.XXXXXX)
trap 'rm -rf "$shm" "$dir"/disk.db*' EXIT
trap 'exit 130' INT TERM

G="--teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 10 --seeds 4 --methods ce,kd --temps 2,4 --record-train"
say "collecting 4 shards in $dir (once)"
"$bv" collect --teacher-only --db "$dir/plan.db" $G >/dev/null
for i in 0 1 2 3; do
	"$bv" collect --shard $i/4 --teacher-ckpt "$dir/plan.db.ckpt/teacher.ckpt" --db "$dir/s$i.db" \
		--jobs 2 $G >/dev/null
done
cat "$dir"/s?.db >/dev/null
bytes=$(for i in 0 1 2 3; do sqlite3 "$dir/s$i.db" "SELECT sum(length(logits)) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method != 'teacher'"; done | awk '{s += $1} END {print s}')
# the teacher's snapshot is in every shard and merged once
tbytes=$(sqlite3 "$dir/s0.db" "SELECT sum(length(logits)) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method = 'teacher'")
bytes=$((bytes + tbytes))
disk=$(dd if=/dev/zero of="$dir/dd.tmp" bs=1M count=1000 conv=fsync 2>&1 | tail -1 | sed 's/.*, //')
rm -f "$dir/dd.tmp"

timed() {
	/usr/bin/time -f "%e" -o "$shm/time" "$@" >/dev/null
	cat "$shm/time"
}
t_shm="" t_disk=""
for r in $(seq "$reps"); do
	rm -rf "$shm"/m.db* "$dir"/disk.db*
	a=$(timed "$bv" merge --db "$shm/m.db" "$dir"/s0.db "$dir"/s1.db "$dir"/s2.db "$dir"/s3.db)
	b=$(timed "$bv" merge --db "$dir/disk.db" "$dir"/s0.db "$dir"/s1.db "$dir"/s2.db "$dir"/s3.db)
	say "rep $r: tmpfs $a s, disk $b s"
	t_shm="$t_shm $a"
	t_disk="$t_disk $b"
done
median() { echo "$@" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ms=$(median $t_shm)
md=$(median $t_disk)
echo "| where | snapshots | median wall time ($reps runs) | MB/s |"
echo "|---|---:|---:|---:|"
awk -v b="$bytes" -v t="$ms" 'BEGIN {printf "| tmpfs (/dev/shm) | %.0f MB | %.2f s | %.0f |\n", b / 1e6, t, b / 1e6 / t}'
awk -v b="$bytes" -v t="$md" -v d="$disk" 'BEGIN {printf "| disk (dd conv=fsync: %s) | %.0f MB | %.2f s | %.0f |\n", d, b / 1e6, t, b / 1e6 / t}'
