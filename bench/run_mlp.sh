#!/bin/sh
# Training throughput of bvtool's nn against PyTorch, in one invocation:
#   cmake --build build && bench/run_mlp.sh build
# First bench_sgemm (the OpenBLAS ceiling), then bench_train and
# bench/torch_mlp.py alternated run by run, so that both see the same
# background load, for models mlp:1200-1200 and mlp:64 at 1 and 2 threads,
# batch 128, CE loss; each setting REPS times, keeping the best. At 2 threads
# PyTorch also runs with 1 intra-op and 2 OpenBLAS threads, and its better
# setting is reported. Prints a Markdown table on stdout (progress goes to
# stderr). About 2 minutes on 2 cores.
# Environment: REPS (default 3), PYTHON (default /usr/bin/python3).
set -eu

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
reps=${REPS:-3}
python=${PYTHON:-/usr/bin/python3}
models="mlp:1200-1200 mlp:64"
threads="1 2"
batch=128

sgemm=$build/bench/bench_sgemm
train=$build/bench/bench_train
for exe in "$sgemm" "$train"; do
	if [ ! -x "$exe" ]; then
		echo "run_mlp.sh: cannot find '$exe': build it first (cmake --build $build)" >&2
		exit 2
	fi
done
have_torch=1
if ! "$python" -c 'import torch' 2>/dev/null; then
	echo "run_mlp.sh: no PyTorch for '$python' (Debian package python3-torch); bvtool only" >&2
	have_torch=0
fi

# About 1.5 s of timed steps per run at the speeds of a recent x86 core.
steps_for() {
	case $1 in
	mlp:1200-1200) echo 80 ;;
	mlp:64) echo 4000 ;;
	*) echo 100 ;;
	esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "== bench_sgemm" >&2
"$sgemm" --min-time 0.5 | tee "$tmp/sgemm" >&2
peak1=$(awk '/^sgemm peak:/ { print $3 }' "$tmp/sgemm")
peak2=$(awk '/^sgemm peak:/ { print $7 }' "$tmp/sgemm")

# "key=value ..." -> value of key
field() {
	tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# results: lines "impl model threads setting samples_per_s gflops gflops_exact"
# (gflops: 3 x forward; gflops_exact: the products actually run); a PyTorch
# setting is "intra-op/OpenBLAS" threads. With t > 1 cores PyTorch runs twice:
# t/t (torch.set_num_threads(t)) and 1/t, its best setting when OpenMP's
# spinning threads would otherwise starve OpenBLAS's (see torch_mlp.py).
: >"$tmp/results"
r=1
while [ "$r" -le "$reps" ]; do
	for model in $models; do
		steps=$(steps_for "$model")
		for t in $threads; do
			echo "== rep $r/$reps $model threads=$t" >&2
			line=$("$train" --model "$model" --batch $batch --threads "$t" \
				--steps "$steps" | tail -n 1)
			echo "$line" >&2
			echo "bv $model $t - $(echo "$line" | field samples_per_s)" \
				"$(echo "$line" | field gflops)" \
				"$(echo "$line" | field gflops_exact)" >>"$tmp/results"
			[ $have_torch = 1 ] || continue
			settings="$t/$t"
			[ "$t" -gt 1 ] && settings="$settings 1/$t"
			for s in $settings; do
				line=$("$python" "$here/torch_mlp.py" --model "$model" \
					--batch $batch --threads "${s%/*}" --blas-threads "${s#*/}" \
					--steps "$steps" | tail -n 1)
				echo "$line" >&2
				echo "torch $model $t $s $(echo "$line" | field samples_per_s)" \
					"$(echo "$line" | field gflops)" >>"$tmp/results"
			done
		done
	done
	r=$((r + 1))
done

echo
grep '^OpenBLAS' "$tmp/sgemm" || true
echo "sgemm peak: $peak1 GFLOP/s (1 thread), $peak2 GFLOP/s (2 threads);" \
	"best of $reps runs per cell, batch $batch, CE loss"
echo
awk -v models="$models" -v threads="$threads" -v p1="$peak1" -v p2="$peak2" '
# best per (impl, model, threads, setting), then per (impl, model, threads)
{
	key = $1 " " $2 " " $3 " " $4
	if (!(key in sps) || $5 > sps[key]) { sps[key] = $5; gf[key] = $6; gx[key] = $7 }
	cell = $1 " " $2 " " $3
	if (!(cell in best) || $5 > best[cell]) { best[cell] = $5; how[cell] = $4 }
}
function num(x) { return x == "" ? "n/a" : sprintf("%.0f", x) }
END {
	nm = split(models, M, " "); nt = split(threads, T, " ")
	print "| model | threads | bvtool samples/s | PyTorch samples/s (setting) | bvtool / PyTorch | bvtool GFLOP/s (3 x fwd) | bvtool GFLOP/s executed | executed, % of sgemm peak |"
	print "|---|--:|--:|--:|--:|--:|--:|--:|"
	for (i = 1; i <= nm; i++)
		for (j = 1; j <= nt; j++) {
			b = "bv " M[i] " " T[j]; p = "torch " M[i] " " T[j]
			peak = T[j] == 1 ? p1 : p2
			tp = (p in best) ? sprintf("%.0f (%s)", best[p], how[p]) : "n/a"
			ratio = (p in best) && best[p] > 0 ? sprintf("%.2f", best[b] / best[p]) : "n/a"
			printf "| %s | %s | %s | %s | %s | %.1f | %.1f | %.0f%% |\n", M[i], T[j],
			       num(best[b]), tp, ratio, gf[b " -"], gx[b " -"],
			       100 * gx[b " -"] / peak
		}
	print ""
	print "PyTorch setting = intra-op (torch.set_num_threads) / OpenBLAS threads; every setting tried:"
	for (i = 1; i <= nm; i++) {
		line = ""
		for (j = 1; j <= nt; j++)
			for (k in sps) {
				split(k, f, " ")
				if (f[1] == "torch" && f[2] == M[i] && f[3] == T[j])
					line = line sprintf(" %s %.0f;", f[4], sps[k])
			}
		if (line != "")
			printf "- %s PyTorch:%s\n", M[i], line
	}
	for (i = 1; i <= nm; i++) {
		bb = 0; bt = 0; pb = 0; pt = 0
		for (j = 1; j <= nt; j++) {
			b = "bv " M[i] " " T[j]; p = "torch " M[i] " " T[j]
			if (best[b] > bb) { bb = best[b]; bt = T[j] }
			if ((p in best) && best[p] > pb) { pb = best[p]; pt = how[p] }
		}
		if (pb > 0)
			printf "- %s: PyTorch is best at %s threads, %.0f samples/s; bvtool is best at %s thread(s), %.0f samples/s (%.2fx PyTorch best)\n",
			       M[i], pt, pb, bt, bb, bb / pb
		else
			printf "- %s: bvtool is best at %s thread(s), %.0f samples/s\n", M[i], bt, bb
	}
}' "$tmp/results"
