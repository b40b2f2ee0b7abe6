#!/bin/sh
# Training throughput of bvtool's convolutional networks against PyTorch, in
# one invocation:
#   cmake --build build && bench/run_cnn.sh build
# bench_train and bench/torch_cnn.py alternated run by run, so that both see
# the same background load: models resnet20, resnet8x4 and vgg8 on synthetic
# 3x32x32 inputs and 10 classes, batches 64 and 128, CE loss, SGD (momentum
# 0.9, weight decay 5e-4; lr 0.01 in bench_train, 0.05 in torch_cnn.py: the
# step's cost does not depend on it), 1 and 2 threads; each setting REPS
# times, keeping the best. At 2 threads PyTorch runs as 2 intra-op / 2
# OpenBLAS threads and as 1 / 2 (the two settings of bench/run_mlp.sh), and
# its better setting is reported.
# Before timing, the forward flops per sample of both programs are compared
# (bench_train's flops_per_sample, torch_cnn.py --flops-only), and a model
# whose counts differ (not the same network) is flagged under the tables.
# Prints Markdown tables on stdout (progress goes to stderr). About 5 minutes
# on the 2 cores of docs/benchmarks.md with REPS=3, more under load.
# Environment: REPS (default 3), PYTHON (default /usr/bin/python3),
#   MODELS (default "resnet20 resnet8x4 vgg8"), BATCHES (default "64 128"),
#   TORCH_SETTINGS2 (PyTorch's 2-thread settings, intra/OpenBLAS; default
#   "2/2 1/2"), TORCH_MAX_TIME (seconds of timed steps after which a PyTorch
#   run stops early; default 4), BLAS_ENV (default "as-is"; "native" runs both
#   programs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so that
#   OpenBLAS uses the kernel it detects for the CPU: the machines of
#   docs/benchmarks.md set both to pin OpenBLAS to its Haswell kernel; their
#   notes allow unsetting the two together in a benchmark command, never in
#   tests or CI).
set -eu

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
reps=${REPS:-3}
python=${PYTHON:-/usr/bin/python3}
models=${MODELS:-"resnet20 resnet8x4 vgg8"}
batches=${BATCHES:-"64 128"}
settings2=${TORCH_SETTINGS2:-"2/2 1/2"}
max_time=${TORCH_MAX_TIME:-4}
threads="1 2"
input=3x32x32
run_env=""
case ${BLAS_ENV:-as-is} in
as-is) ;;
native) run_env="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" ;;
*)
	echo "run_cnn.sh: BLAS_ENV must be as-is or native, not '$BLAS_ENV'" >&2
	exit 2
	;;
esac

train=$build/bench/bench_train
if [ ! -x "$train" ]; then
	echo "run_cnn.sh: cannot find '$train': build it first (cmake --build $build)" >&2
	exit 2
fi
have_torch=1
if ! "$python" -c 'import torch' 2>/dev/null; then
	echo "run_cnn.sh: no PyTorch for '$python' (Debian package python3-torch); bvtool only" >&2
	have_torch=0
fi

# Timed samples per run (steps = samples / batch): about 1.5-3 s per run on
# one core of a recent x86 at bvtool's speed. One untimed step first for
# bvtool (buffers are allocated on the first step), two for PyTorch (oneDNN
# creates its primitives on the first steps).
samples_for() {
	case $1 in
	resnet20) echo 512 ;;
	resnet8x4) echo 256 ;;
	vgg8) echo 384 ;;
	*) echo 256 ;;
	esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# "key=value ..." -> value of key
field() {
	tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# The same network on both sides? Compare the forward flops per sample.
# flops: lines "model bvtool_flops torch_flops"
: >"$tmp/flops"
for model in $models; do
	bvf=$($run_env "$train" --model "$model" --input $input --batch 1 --steps 1 --warmup 0 |
		tail -n 1 | field flops_per_sample)
	tf=n/a
	if [ $have_torch = 1 ]; then
		tf=$($run_env "$python" "$here/torch_cnn.py" --model "$model" --input $input --flops-only |
			tail -n 1 | field flops_per_sample)
	fi
	echo "== $model: forward flops per sample: bvtool $bvf, PyTorch $tf" >&2
	echo "$model $bvf $tf" >>"$tmp/flops"
done

# results: "impl model batch threads setting samples_per_s gflops peak_rss_kb base_rss_kb"
: >"$tmp/results"
r=1
while [ "$r" -le "$reps" ]; do
	for model in $models; do
		for batch in $batches; do
			steps=$(( $(samples_for "$model") / batch ))
			[ "$steps" -ge 1 ] || steps=1
			for t in $threads; do
				echo "== rep $r/$reps $model batch=$batch threads=$t ($(uptime | sed 's/.*load average: /load /'))" >&2
				line=$($run_env "$train" --model "$model" --input $input --batch "$batch" \
					--threads "$t" --steps "$steps" --warmup 1 | tail -n 1)
				echo "$line" >&2
				echo "bv $model $batch $t - $(echo "$line" | field samples_per_s)" \
					"$(echo "$line" | field gflops)" \
					"$(echo "$line" | field peak_rss_kb) 0" >>"$tmp/results"
				[ $have_torch = 1 ] || continue
				settings="$t/$t"
				[ "$t" -gt 1 ] && settings=$settings2
				for s in $settings; do
					line=$($run_env "$python" "$here/torch_cnn.py" --model "$model" --input $input \
						--batch "$batch" --threads "${s%/*}" \
						--blas-threads "${s#*/}" --steps "$steps" --warmup 2 \
						--max-time "$max_time" | tail -n 1)
					echo "$line" >&2
					echo "torch $model $batch $t $s $(echo "$line" | field samples_per_s)" \
						"$(echo "$line" | field gflops)" \
						"$(echo "$line" | field peak_rss_kb)" \
						"$(echo "$line" | field base_rss_kb)" >>"$tmp/results"
				done
			done
		done
	done
	r=$((r + 1))
done

echo
echo "Best of $reps runs per cell, input $input, CE loss, SGD momentum 0.9;" \
	"PyTorch $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo n/a);" \
	"BLAS_ENV=${BLAS_ENV:-as-is} (OPENBLAS_CORETYPE $([ -n "$run_env" ] && echo unset for both programs || echo "${OPENBLAS_CORETYPE:-not set}"));" \
	"bvtool's OpenBLAS core: $($run_env "$train" --model mlp:8 --batch 1 --steps 1 --warmup 0 | tail -n 1 | field openblas_core)"
echo
awk -v models="$models" -v batches="$batches" -v threads="$threads" -v settings2="$settings2" -v flops="$tmp/flops" '
BEGIN {
	while ((getline line < flops) > 0) {
		split(line, f, " "); bvflops[f[1]] = f[2]; tflops[f[1]] = f[3]
	}
}
# best per (impl, model, batch, threads, setting), then per (impl, model, batch, threads)
{
	key = $1 " " $2 " " $3 " " $4 " " $5
	if (!(key in sps) || $6 > sps[key]) sps[key] = $6
	cell = $1 " " $2 " " $3 " " $4
	if (!(cell in best) || $6 > best[cell]) {
		best[cell] = $6; how[cell] = $5; gf[cell] = $7; rss[cell] = $8; base[cell] = $9
	}
	n[key]++; runs[key] = runs[key] sprintf(" %.0f", $6)
}
function mib(kb) { return sprintf("%.0f", kb / 1024) }
END {
	nm = split(models, M, " "); nb = split(batches, B, " "); nt = split(threads, T, " ")
	print "| model | batch | threads | bvtool samples/s | PyTorch samples/s (setting) | bvtool / PyTorch | bvtool GFLOP/s (3 x fwd) | peak RSS bvtool (MiB) | peak RSS PyTorch (MiB; after import torch) |"
	print "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
	for (i = 1; i <= nm; i++)
		for (k = 1; k <= nb; k++)
			for (j = 1; j <= nt; j++) {
				b = "bv " M[i] " " B[k] " " T[j]; p = "torch " M[i] " " B[k] " " T[j]
				tp = (p in best) ? sprintf("%.0f (%s)", best[p], how[p]) : "n/a"
				ratio = (p in best) && best[p] > 0 ? sprintf("%.2f", best[b] / best[p]) : "n/a"
				prss = (p in best) ? sprintf("%s (%s)", mib(rss[p]), mib(base[p])) : "n/a"
				printf "| %s | %s | %s | %.0f | %s | %s | %.1f | %s | %s |\n", M[i], B[k], T[j],
				       best[b], tp, ratio, gf[b], mib(rss[b]), prss
			}
	print ""
	print "Best setting against best setting (the target: bvtool >= PyTorch at its best thread setting):"
	print ""
	print "| model | batch | bvtool best samples/s (threads) | PyTorch best samples/s (setting) | ratio | met |"
	print "|---|--:|--:|--:|--:|---|"
	for (i = 1; i <= nm; i++)
		for (k = 1; k <= nb; k++) {
			bb = 0; bt = ""; pb = 0; pt = ""
			for (j = 1; j <= nt; j++) {
				b = "bv " M[i] " " B[k] " " T[j]; p = "torch " M[i] " " B[k] " " T[j]
				if (best[b] > bb) { bb = best[b]; bt = T[j] }
				if ((p in best) && best[p] > pb) { pb = best[p]; pt = how[p] }
			}
			if (pb > 0)
				printf "| %s | %s | %.0f (%s) | %.0f (%s) | %.2f | %s |\n", M[i], B[k], bb, bt, pb, pt,
				       bb / pb, (bb >= pb ? "yes" : "no")
			else
				printf "| %s | %s | %.0f (%s) | n/a | n/a | n/a |\n", M[i], B[k], bb, bt
		}
	print ""
	print "Every run (samples/s), in order; PyTorch setting = intra-op (torch.set_num_threads) / OpenBLAS threads:"
	print ""
	for (i = 1; i <= nm; i++) {
		if (tflops[M[i]] != "n/a" && tflops[M[i]] != bvflops[M[i]])
			printf "- %s: WARNING: forward flops per sample differ (bvtool %s, PyTorch %s): not the same network\n", M[i], bvflops[M[i]], tflops[M[i]]
		for (k = 1; k <= nb; k++)
			for (j = 1; j <= nt; j++) {
				key = "bv " M[i] " " B[k] " " T[j] " -"
				if (key in n)
					printf "- %s batch %s, bvtool %s thread(s):%s\n", M[i], B[k], T[j], runs[key]
				ns = T[j] == 1 ? split("1/1", S, " ") : split(settings2, S, " ")
				for (q = 1; q <= ns; q++) {
					key = "torch " M[i] " " B[k] " " T[j] " " S[q]
					if (key in n)
						printf "- %s batch %s, PyTorch %s:%s\n", M[i], B[k], S[q], runs[key]
				}
			}
	}
}' "$tmp/results"
