#!/bin/sh
# shellcheck disable=SC2086 # $pin is split on purpose
# The targets of issue 12 for bvtool import and decompose at CIFAR-100 size:
#   bench/import_bench.sh [BUILD_DIR]        (default: the repository's build/)
# 1. Writes (once, kept in $BV_BENCH_DIR, default /tmp/bv-import-bench) the layout
#    of bench/import_gen.py: 10,000 test samples x 100 classes, a teacher, 16 seeds
#    x ce/kd/wsl at T = 4, 10 recorded epochs: 48 (10, 10000, 100) float32 arrays,
#    1.92 GB of logits.
# 2. Reads them once so they sit in the page cache, then REPS times imports them
#    into a new database (a) on tmpfs (/dev/shm: the import's own speed, no disk
#    in the way) and (b) in $BV_BENCH_DIR (a real file system: every byte reaches
#    the disk, twice in WAL mode, so the disk's write speed, measured here with dd
#    conv=fsync, bounds it). Wall time and peak RSS (the time utility's %M) of
#    the whole process. MB/s = logit bytes written / wall time.
# 3. decompose --temp 4 of that database (every recorded epoch, --bootstrap 0
#    and the default 200) on one core (taskset -c 0, OPENBLAS_NUM_THREADS=1),
#    REPS times, interleaved with bench/decompose_numpy.py on a copy of it;
#    then both unpinned, as a user runs them (bvtool splits each epoch's
#    samples over two threads and writes on a third; NumPy has one thread).
# Prints Markdown on stdout; raw timings on stderr. About 10 minutes the first
# time (writing the layout), 5 after. Needs /usr/bin/python3 with numpy, the
# time utility, taskset, 8 GB free in $BV_BENCH_DIR and 4 GB in /dev/shm.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bv=$build/bvtool
py=/usr/bin/python3
reps=${REPS:-3}
dir=${BV_BENCH_DIR:-/tmp/bv-import-bench}
[ -x "$bv" ] || { echo "import_bench.sh: build $bv first" >&2; exit 2; }
command -v time >/dev/null 2>&1 || { echo "import_bench.sh: needs the time utility (Debian package time)" >&2; exit 2; }
say() { echo "$*" >&2; }
mkdir -p "$dir"
shm=$(mktemp -d /dev/shm/bv-import.XXXXXX)
trap 'rm -rf "$shm" "$dir/disk.db" "$dir/disk.db-wal" "$dir/disk.db-shm" "$dir/np.db"' EXIT
trap 'exit 130' INT TERM

say "writing the layout in $dir/layout (once)"
$py "$here/import_gen.py" "$dir/layout"
bytes=$(du -cb "$dir"/layout/*_test.npy | tail -1 | cut -f1)
cat "$dir"/layout/*.npy >/dev/null
disk=$(dd if=/dev/zero of="$dir/dd.tmp" bs=1M count=1000 conv=fsync 2>&1 | tail -1 | sed 's/.*, //')
rm -f "$dir/dd.tmp"

# timed CMD...: "seconds peak_kb" of the whole process
timed() {
	/usr/bin/time -f "%e %M" -o "$shm/time" "$@" >/dev/null
	cat "$shm/time"
}
imp_shm="" imp_disk=""
for r in $(seq "$reps"); do
	rm -f "$shm/i.db" "$shm/i.db-wal" "$shm/i.db-shm"
	t=$(timed "$bv" import --quiet --db "$shm/i.db" "$dir/layout")
	say "import to tmpfs: $t"
	imp_shm="$imp_shm $t"
	rm -f "$dir/disk.db" "$dir/disk.db-wal" "$dir/disk.db-shm"
	t=$(timed "$bv" import --quiet --db "$dir/disk.db" "$dir/layout")
	say "import to $dir: $t"
	imp_disk="$imp_disk $t"
done
rm -f "$dir/disk.db" "$dir/disk.db-wal" "$dir/disk.db-shm"

cp "$shm/i.db" "$dir/np.db"
dec0="" dec200="" np="" dec_u="" np_u=""
for r in $(seq "$reps"); do
	t=$(OPENBLAS_NUM_THREADS=1 timed taskset -c 0 "$bv" decompose --db "$shm/i.db" --temp 4 --bootstrap 0)
	say "decompose --bootstrap 0: $t"
	dec0="$dec0 $t"
	t=$(OPENBLAS_NUM_THREADS=1 timed taskset -c 0 "$bv" decompose --db "$shm/i.db" --temp 4)
	say "decompose: $t"
	dec200="$dec200 $t"
	t=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 timed taskset -c 0 $py "$here/decompose_numpy.py" "$dir/np.db" --temp 4)
	say "numpy: $t"
	np="$np $t"
	# unpinned, as a user runs them: bvtool splits the samples over the CPUs
	# and writes on a thread of its own; the NumPy script has one thread
	t=$(OPENBLAS_NUM_THREADS=1 timed "$bv" decompose --db "$shm/i.db" --temp 4 --bootstrap 0)
	say "decompose --bootstrap 0, unpinned: $t"
	dec_u="$dec_u $t"
	t=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 timed $py "$here/decompose_numpy.py" "$dir/np.db" --temp 4)
	say "numpy, unpinned: $t"
	np_u="$np_u $t"
done

# best and median of the pairs "s kb s kb ..."
stats() {
	echo "$1" | tr ' ' '\n' | sed '/^$/d' | paste - - | sort -n | awk -v b="$bytes" -v what="$2" '
		{ s[NR] = $1; m = ($2 > m ? $2 : m) }
		END { med = s[int((NR + 1) / 2)];
		      if (what == "rate") printf "%.2f s best (%.0f MB/s), %.2f s median (%.0f MB/s), peak RSS %.0f MB", s[1], b / s[1] / 1e6, med, b / med / 1e6, m / 1024;
		      else printf "%.2f s best, %.2f s median, peak RSS %.0f MB", s[1], med, m / 1024 }'
}
best() { echo "$1" | tr ' ' '\n' | sed '/^$/d' | paste - - | sort -n | head -1 | cut -f1; }
snap=4 # MB: 10,000 x 100 float32
cat <<MD
| step ($reps runs each, $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}) | result |
|---|---|
| import, 48 runs x 10 epochs, $((bytes / 1000000)) MB of logits, database on tmpfs | $(stats "$imp_shm" rate) |
| import, the same, database on $dir (disk: dd conv=fsync $disk) | $(stats "$imp_disk" rate) |
| memory target: 2 snapshots ($snap MB each) + 64 MB | $((2 * snap + 64)) MB |
| decompose --temp 4 --bootstrap 0, one core | $(stats "$dec0" time) |
| decompose --temp 4 (bootstrap 200), one core | $(stats "$dec200" time) |
| bench/decompose_numpy.py --temp 4, one core | $(stats "$np" time) |
| NumPy / bvtool (best, --bootstrap 0), one core | $(echo "$(best "$np") $(best "$dec0")" | awk '{printf "%.2fx", $1 / $2}') |
| decompose --temp 4 --bootstrap 0, unpinned ($(nproc) CPUs) | $(stats "$dec_u" time) |
| bench/decompose_numpy.py --temp 4, unpinned | $(stats "$np_u" time) |
| NumPy / bvtool (best, --bootstrap 0), unpinned | $(echo "$(best "$np_u") $(best "$dec_u")" | awk '{printf "%.2fx", $1 / $2}') |
MD
