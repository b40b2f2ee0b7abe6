#!/bin/sh
# Run one fuzz target: replay its seed corpus (corpus/TARGET) and its known
# crashers (crashes/TARGET), then fuzz for SECONDS on a copy of the corpus in
# the build tree (the source tree is never written), and print one summary
# line: executions, executions per second, coverage, and crashes.
#   tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER_FLAGS...]
#   BV_FUZZ_BIN_DIR   where the targets are (default: build-fuzz/tests/fuzz)
# ctest runs it as `run.sh --ctest TARGET SECONDS` (label fuzz). Exit status:
# 0 no crash, 1 a crash, hang, leak or sanitizer report (the reproducer is
# named), 2 usage or a missing target.
set -u

ctest=0
if [ "${1:-}" = "--ctest" ]; then
	ctest=1
	shift
fi
if [ $# -lt 2 ]; then
	echo "usage: tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER_FLAGS...]" >&2
	exit 2
fi
target=$1
seconds=$2
shift 2

src=$(cd "$(dirname "$0")" && pwd)
bin_dir=${BV_FUZZ_BIN_DIR:-$(cd "$src/../.." && pwd)/build-fuzz/tests/fuzz}
bin=$bin_dir/$target
if [ ! -x "$bin" ]; then
	echo "run.sh: no fuzz target '$bin' (build with CC=clang cmake -S . -B build-fuzz -DBV_FUZZ=ON)" >&2
	exit 2
fi
case $target in
fuzz_db | fuzz_db_sql) dict=$src/sql.dict ;;
*) dict=$src/$target.dict ;;
esac
dict_flag=""
[ -f "$dict" ] && dict_flag="-dict=$dict"

work=$bin_dir/work/$target
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
log=$work/fuzz.log
# the targets' scratch directories (one per process; a crashed one leaves its
# own behind): in memory when /dev/shm exists, all removed at the end
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=$work
BV_FUZZ_TMP=$(mktemp -d "$shm/bvfuzz-run.XXXXXX")
export BV_FUZZ_TMP
trap 'rm -rf "$BV_FUZZ_TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
# a stack with every UBSan report
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
# a leak, an ASan or UBSan report is a crash; libFuzzer's own limits: 2 GB, 10 s per input
flags="-rss_limit_mb=2048 -timeout=10"
replay_flags="$flags -artifact_prefix=$work/replay-"

# 1. replay the seeds (they must all pass: libFuzzer starts from them)
# shellcheck disable=SC2086
if ! "$bin" $replay_flags -runs=0 "$src/corpus/$target" >"$work/replay.log" 2>&1; then
	tail -n 40 "$work/replay.log" >&2
	echo "$target: FAILED replaying the seed corpus (log: $work/replay.log)" >&2
	exit 1
fi
# 2. replay the known crashers, one by one: each must pass once its defect is fixed
still=0
for c in "$src/crashes/$target/"*; do
	[ -f "$c" ] || continue
	# shellcheck disable=SC2086
	if ! "$bin" $replay_flags "$c" >"$work/crasher.log" 2>&1; then
		still=$((still + 1))
		why=$(grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: property)|runtime error' "$work/crasher.log" | head -n 1)
		echo "$target: known crasher $(basename "$c") still fails: $why" >&2
	fi
done

# 3. fuzz on a copy of the corpus
cp "$src/corpus/$target/"* "$work/corpus/"
start=$(date +%s)
# shellcheck disable=SC2086
"$bin" $flags -print_final_stats=1 -artifact_prefix="$work/artifacts/" $dict_flag -max_total_time="$seconds" "$@" "$work/corpus" >"$log" 2>&1
status=$?
elapsed=$(($(date +%s) - start))
[ "$elapsed" -gt 0 ] || elapsed=1

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | sed 's/ft: //')
units=$(ls "$work/corpus" | wc -l)
crashes=$(ls "$work/artifacts" | wc -l)
# -fork=N (with -ignore_crashes=1 to go on after a crash): the parent's last
# "#N: cov: C ft: F corp: U exec/s: R oom/timeout/crash: a/b/c" line
if grep -q 'oom/timeout/crash:' "$log"; then
	last=$(grep 'oom/timeout/crash:' "$log" | tail -n 1)
	execs=$(echo "$last" | sed -n 's/^#\([0-9]*\):.*/\1/p')
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	# distinct failures, by their first report line
	grep -hE '^(==[0-9]+==ERROR: [A-Za-z]+Sanitizer: [a-z-]+|fuzz: property violated: .*|.*runtime error: .*|==[0-9]+== ERROR: libFuzzer: [a-z-]+)' \
		"$log" "$work"/corpus/../fuzz-*.log 2>/dev/null | sed -e 's/^==[0-9]*==/==/' -e 's/ on address.*//' -e 's/^.*\/\([a-z_]*\.c:[0-9]*\)/\1/' |
		sort | uniq -c | sort -rn | head -n 12 >"$work/failures.txt"
	[ -s "$work/failures.txt" ] && { echo "$target: distinct failures (count, first line):"; cat "$work/failures.txt"; }
fi
rate="?"
[ -n "$execs" ] && rate=$((execs / elapsed))
echo "$target: ${execs:-?} executions in $elapsed s ($rate/s), cov ${cov:-?} ft ${ft:-?}, corpus $units, crashes $crashes"
if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
	grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: property|.*runtime error)' "$log" | head -n 5 >&2
	# the first frames of the program's own stack (not the sanitizer's, libFuzzer's or libc's)
	grep -E '^    #[0-9]+ ' "$log" | grep -vE '__sanitizer|fuzzer::|libc\.so|nptl/|raise\.c|abort\.c|fz_fail' |
		head -n 8 >&2
	ls "$work/artifacts/" | head -n 5 | while read -r a; do
		echo "$target: reproducer $work/artifacts/$a (replay: $bin $work/artifacts/$a)" >&2
	done
	[ "$crashes" -gt 5 ] && echo "$target: ... and $((crashes - 5)) more in $work/artifacts" >&2
	echo "$target: log $log" >&2
	exit 1
fi
if [ "$still" -ne 0 ]; then
	echo "$target: $still known crasher(s) in tests/fuzz/crashes/$target still fail" >&2
	exit 1
fi
[ "$ctest" = 1 ] && tail -n 3 "$log"
exit 0
