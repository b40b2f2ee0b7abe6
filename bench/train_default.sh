#!/bin/sh
# Issue 14's number: `bvtool train` at its default settings against PyTorch at
# its best thread setting, end to end:
#   cmake --build build && bench/train_default.sh build
# Both sides train mlp:1200-1200 on Fashion-MNIST (the Debian files, gzip IDX)
# at batch 128 for EPOCHS epochs, each epoch followed by the evaluation of the
# test set, and the time is the wall time of the whole process: start-up (for
# PyTorch, importing torch), reading and normalising the data, training,
# evaluating. bvtool runs `bvtool train --epochs EPOCHS` and nothing else: its
# model, batch, data and --threads (the CPUs this process may use) are its
# defaults. PyTorch runs bench/torch_mlp.py --data (the same loop, in PyTorch)
# at each thread setting intra-op/OpenBLAS of 1/1, 1/N and N/N for N = nproc;
# the setting with the lowest median is its best. The runs are interleaved, in
# one order then the reverse, so that a shared machine's load falls on all
# alike. OPENBLAS_CORETYPE is left as the environment has it, for both.
# Prints a Markdown table on stdout (progress on stderr). 10-15 minutes on 2
# cores with the defaults.
# Environment: REPS (default 5), EPOCHS (default 3), PYTHON (default
# /usr/bin/python3), DATA (default /usr/share/datasets/fashion-mnist).
set -eu

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
reps=${REPS:-5}
epochs=${EPOCHS:-3}
python=${PYTHON:-/usr/bin/python3}
data=${DATA:-/usr/share/datasets/fashion-mnist}
bv=$build/bvtool
say() { echo "$*" >&2; }

if [ ! -x "$bv" ]; then
	say "train_default.sh: cannot find '$bv': build it first (cmake --build $build)"
	exit 2
fi
if ! "$python" -c 'import torch, numpy' 2>/dev/null; then
	say "train_default.sh: no PyTorch and NumPy for '$python' (Debian python3-torch, python3-numpy)"
	exit 2
fi
if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
	say "train_default.sh: no Fashion-MNIST in '$data' (Debian package fashion-mnist, or DATA=DIR)"
	exit 2
fi
bv_data=fashion-mnist
[ -n "${DATA:-}" ] && bv_data="fashion-mnist:$data"

n=$(nproc)
settings="1/1"
[ "$n" -gt 1 ] && settings="1/1 1/$n $n/$n"
sides="bvtool"
for s in $settings; do sides="$sides torch:$s"; done
reversed=$(echo "$sides" | tr ' ' '\n' | awk '{ l[NR] = $0 } END { for (i = NR; i > 0; i--) print l[i] }')

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
now() { date +%s.%N; }

# run SIDE: one timed run; appends "SIDE seconds accuracy" to the results
run() {
	case $1 in
	bvtool) set -- "$1" "$bv" train --data "$bv_data" --epochs "$epochs" ;;
	torch:*)
		s=${1#torch:}
		set -- "$1" "$python" "$here/torch_mlp.py" --data "$data" --epochs "$epochs" \
			--model mlp:1200-1200 --batch 128 --threads "${s%/*}" --blas-threads "${s#*/}"
		;;
	esac
	side=$1
	shift
	t0=$(now)
	if ! "$@" >"$tmp/out" 2>&1; then
		say "train_default.sh: $side failed:"
		cat "$tmp/out" >&2
		exit 1
	fi
	t1=$(now)
	acc=$(tail -n 1 "$tmp/out" | sed -n 's/^test accuracy: //p')
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	say "  $side: ${secs} s, test accuracy $acc"
	echo "$side $secs $acc" >>"$tmp/results"
}

: >"$tmp/results"
r=1
while [ "$r" -le "$reps" ]; do
	order=$sides
	[ $((r % 2)) -eq 0 ] && order=$reversed
	say "== rep $r/$reps"
	for side in $order; do run "$side"; done
	r=$((r + 1))
done

echo "bvtool train --epochs $epochs (defaults: mlp:1200-1200, batch 128, --threads = the CPUs" \
	"this process may use; nproc = $n) against bench/torch_mlp.py --data at intra-op/OpenBLAS" \
	"threads $settings; $reps interleaved runs each, whole-process wall time"
echo
awk -v sides="$sides" '
{ t[$1, ++c[$1]] = $2; acc[$1] = $3 }
function sorted_median(side,    i, j, k, v, m) {
	m = c[side]
	for (i = 1; i <= m; i++) v[i] = t[side, i]
	for (i = 2; i <= m; i++) { k = v[i]; for (j = i - 1; j > 0 && v[j] > k; j--) v[j + 1] = v[j]; v[j + 1] = k }
	lo[side] = v[1]; hi[side] = v[m]
	return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
	ns = split(sides, S, " ")
	for (i = 1; i <= ns; i++) med[S[i]] = sorted_median(S[i])
	best = ""
	for (i = 2; i <= ns; i++) if (best == "" || med[S[i]] < med[best]) best = S[i]
	print "| side | threads | median s | best s | worst s | spread (worst / best) | test accuracy |"
	print "|---|---|--:|--:|--:|--:|--:|"
	for (i = 1; i <= ns; i++) {
		s = S[i]
		who = s == "bvtool" ? "bvtool train" : "PyTorch" (s == best ? " (best)" : "")
		th = s == "bvtool" ? "default" : substr(s, 7) " (intra-op/OpenBLAS)"
		printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %s |\n", who, th, med[s], lo[s], hi[s], hi[s] / lo[s], acc[s]
	}
	print ""
	printf "bvtool / PyTorch at its best (%s): %.2fx by medians, %.2fx by best runs (target >= 1.2x)\n",
	       substr(best, 7), med[best] / med["bvtool"], lo[best] / lo["bvtool"]
}' "$tmp/results"
