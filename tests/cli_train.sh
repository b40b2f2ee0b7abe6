#!/bin/sh
# `bvtool train` and the help system end to end: real Fashion-MNIST subsets,
# every bad input of issue 2 (exact stderr line, exit status, no output file),
# and byte-identical checkpoints for the same command.
# Needs BVTOOL, TOOL_CKPT, BV_TMP; Fashion-MNIST from the Debian package.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
fm=/usr/share/datasets/fashion-mnist
t=$BV_TMP/cli_train.$$
mkdir -p "$t"

# --- help from one command table
run "$bv" --help
assert "--help exits 0" [ "$status" = 0 ]
assert "--help lists train" grep -q "^  train " "$out"
run "$bv" help train
assert "help train exits 0" [ "$status" = 0 ]
assert "help train lists --temp with its default" grep -q -- "--temp T .*(default: 4)" "$out"
"$bv" train --help >"$t/h1"
"$bv" help train >"$t/h2"
assert "bvtool train --help == bvtool help train" cmp -s "$t/h1" "$t/h2"
expect 2 "bvtool: no command 'frobnicate' (bvtool help lists them)" "$bv" frobnicate
run "$bv"
assert "no command: status 2" [ "$status" = 2 ]
assert "no command: usage on stderr" grep -q "^usage: bvtool COMMAND" "$err"

# --- flags
expect 2 "bvtool train: unknown option '--frob'" "$bv" train --frob 1
expect 2 "bvtool train: --temp: must be greater than 0, got '0'" "$bv" train --temp 0
expect 2 "bvtool train: --temp: must be greater than 0, got '-1'" "$bv" train --temp -1
expect 2 "bvtool train: --lr: expected a number, got 'abc'" "$bv" train --lr abc
expect 2 "bvtool train: --epochs: expected a whole number, got '2.5'" "$bv" train --epochs 2.5
expect 2 "bvtool train: --lr needs a value (LR)" "$bv" train --lr
# numbers are plain decimal, checked in full (D16): no white space, hex, inf or nan
expect 2 "bvtool train: --epochs: expected a whole number, got ' 1'" "$bv" train --epochs " 1"
expect 2 "bvtool train: --epochs: expected a whole number, got '1 '" "$bv" train --epochs "1 "
expect 2 "bvtool train: --epochs: expected a whole number, got '1x'" "$bv" train --epochs 1x
expect 2 "bvtool train: --epochs: expected a whole number, got '0x10'" "$bv" train --epochs 0x10
expect 2 "bvtool train: --lr: expected a number, got '0x10'" "$bv" train --lr 0x10
expect 2 "bvtool train: --lr: expected a number, got ' 0.1'" "$bv" train --lr " 0.1"
expect 2 "bvtool train: --lr: expected a number, got 'inf'" "$bv" train --lr inf
expect 2 "bvtool train: --lr: expected a number, got 'nan'" "$bv" train --lr nan
expect 2 "bvtool train: --lr: expected a number, got 'infinity'" "$bv" train --lr infinity
expect 2 "bvtool train: --lr: expected a number, got ''" "$bv" train --lr ""
expect 2 "bvtool train: --lr: expected a number, got '1e'" "$bv" train --lr=1e
expect 2 "bvtool train: --temp: expected a number, got '4,5'" "$bv" train --temp 4,5
expect 2 "bvtool train: --seed: -1 is out of range (0 to 2147483647)" "$bv" train --seed -1
expect_sub 2 "bvtool train: --model: unknown model spec 'mlp:8:dropout=0x0.1': dropout must be a number" "$bv" train --model mlp:8:dropout=0x0.1
expect_sub 2 "bvtool train: --model: unknown model spec 'mlp: 8': hidden widths must be whole numbers" "$bv" train --model "mlp: 8"
expect 2 "bvtool train: --schedule: bad schedule 'step:5,8:0x1' (expected const, cosine or step:E1,E2,...:GAMMA with increasing epochs, e.g. step:150,180,210:0.1)" "$bv" train --schedule step:5,8:0x1
# plain decimal still parses (a sign, a fraction, an exponent; -0 is 0): --help after them exits 0
for v in "--lr 1e-2" "--lr 0.05" "--lr .5" "--lr +0.1" "--lr 2E-3" "--seed -0" "--seed +3" "--epochs 010" "--wd -0"; do
	# shellcheck disable=SC2086
	run "$bv" train $v --help
	assert "'$v' parses (status $status)" [ "$status" = 0 ]
done
expect 2 "bvtool train: --method: unknown method 'distill' (expected ce, kd, wsl or kd-filter)" "$bv" train --method distill
expect 2 "bvtool train: --method kd needs a teacher: --teacher CKPT" "$bv" train --method kd
expect 2 "bvtool train: --schedule: bad schedule 'step:5' (expected const, cosine or step:E1,E2,...:GAMMA with increasing epochs, e.g. step:150,180,210:0.1)" "$bv" train --schedule step:5

# --- bad data
expect 3 "bvtool train: data directory '$t/nowhere' does not exist" "$bv" train --data "mnist:$t/nowhere" --out "$t/x.ckpt"
expect_sub 2 "unknown data 'imagenet'" "$bv" train --data imagenet
mkdir -p "$t/trunc" "$t/magic" "$t/count" "$t/label" "$t/corrupt"
for d in trunc magic count label corrupt; do
	cp "$fm"/t10k-*.gz "$t/$d/"
	cp "$fm"/train-labels-idx1-ubyte.gz "$t/$d/"
done
head -c 100000 "$fm/train-images-idx3-ubyte.gz" >"$t/trunc/train-images-idx3-ubyte.gz"
expect 4 "bvtool train: cannot read '$t/trunc/train-images-idx3-ubyte.gz': truncated gzip stream" "$bv" train --data "idx:$t/trunc" --out "$t/x.ckpt"
cp "$fm/train-images-idx3-ubyte.gz" "$t/corrupt/"
# overwrite 64 bytes in the middle of the deflate stream
printf 'corruptcorruptcorruptcorruptcorruptcorruptcorruptcorruptcorrupt!' |
	dd of="$t/corrupt/train-images-idx3-ubyte.gz" bs=1 seek=5000000 conv=notrunc 2>/dev/null
# (this damage makes the stream inflate to more than the header promises, which
# is where the reading stops: never past the promise)
expect 4 "bvtool train: cannot read '$t/corrupt/train-images-idx3-ubyte.gz': more data than its header promises (47040000 bytes)" "$bv" train --data "idx:$t/corrupt"
# a labels file where the images file should be
cp "$fm/train-labels-idx1-ubyte.gz" "$t/magic/train-images-idx3-ubyte.gz"
expect_sub 4 "'$t/magic/train-images-idx3-ubyte.gz'" "$bv" train --data "idx:$t/magic"
printf '\000\000\010\007\000\000\000\001\000' >"$t/magic/train-images-idx3-ubyte"
rm "$t/magic/train-images-idx3-ubyte.gz"
expect_sub 4 "'$t/magic/train-images-idx3-ubyte': bad magic 0x00000807" "$bv" train --data "idx:$t/magic"
# 10000 labels for 60000 images
cp "$fm/train-images-idx3-ubyte.gz" "$t/count/"
cp "$fm/t10k-labels-idx1-ubyte.gz" "$t/count/train-labels-idx1-ubyte.gz"
expect_sub 4 "$t/count/train-images-idx3-ubyte.gz" "$bv" train --data "idx:$t/count"
# a label of 10 in a 10-class set: images and labels of 3 samples
printf '\000\000\010\003\000\000\000\003\000\000\000\002\000\000\000\002' >"$t/label/train-images-idx3-ubyte"
printf '\001\002\003\004\005\006\007\010\011\012\013\014' >>"$t/label/train-images-idx3-ubyte"
printf '\000\000\010\001\000\000\000\003\001\012\002' >"$t/label/train-labels-idx1-ubyte"
rm "$t/label/train-labels-idx1-ubyte.gz"
expect_sub 4 "'$t/label/train-labels-idx1-ubyte'" "$bv" train --data "idx:$t/label"
# an IDX file with a byte to spare, and one a byte short (raw)
mkdir -p "$t/long" "$t/short"
cp "$t/label/train-images-idx3-ubyte" "$t/long/"
cp "$t/label/train-images-idx3-ubyte" "$t/short/"
cp "$fm"/t10k-*.gz "$t/long/"
cp "$fm"/t10k-*.gz "$t/short/"
printf '\000\000\010\001\000\000\000\003\001\002\003\004' >"$t/long/train-labels-idx1-ubyte"
expect 4 "bvtool train: cannot read '$t/long/train-labels-idx1-ubyte': more data than its header promises (3 bytes)" "$bv" train --data "idx:$t/long" --out "$t/x.ckpt"
printf '\000\000\010\001\000\000\000\003\001\002' >"$t/short/train-labels-idx1-ubyte"
expect 4 "bvtool train: cannot read '$t/short/train-labels-idx1-ubyte': truncated: expected 3 bytes, found 2" "$bv" train --data "idx:$t/short" --out "$t/x.ckpt"
expect 4 "bvtool train: cannot read '$t/label/train-labels-idx1-ubyte': sample 1 has label 10 (expected 0 to 9)" "$bv" train --data "idx:$t/label" --out "$t/x.ckpt"
assert "no checkpoint written on bad data" [ ! -e "$t/x.ckpt" ]

# --- --out must be absent or a regular file, in a directory that exists (D4):
# refused before the data is read, the path left as it was
q="--model mlp:8 --epochs 1"
mkfifo "$t/fifo"
# shellcheck disable=SC2086
expect 3 "bvtool train: '$t/fifo' is not a regular file; refusing to replace it" "$bv" train $q --out "$t/fifo"
assert "--out FIFO: refused before training (no stdout)" [ ! -s "$out" ]
assert "--out FIFO: still a FIFO" [ -p "$t/fifo" ]
ln -s fifo "$t/fifo-link"
# shellcheck disable=SC2086
expect 3 "bvtool train: '$t/fifo-link' is not a regular file; refusing to replace it" "$bv" train $q --out "$t/fifo-link"
assert "--out link to a FIFO: the link is still a link to it" [ -L "$t/fifo-link" ] && [ -p "$t/fifo" ]
mkdir "$t/outdir"
# shellcheck disable=SC2086
expect 3 "bvtool train: '$t/outdir' is not a regular file; refusing to replace it" "$bv" train $q --out "$t/outdir"
assert "--out directory: still a directory" [ -d "$t/outdir" ]
# shellcheck disable=SC2086
expect 3 "bvtool train: cannot write '$t/nodir/x.ckpt': directory '$t/nodir' does not exist" "$bv" train $q --out "$t/nodir/x.ckpt"
assert "--out in a missing directory: refused before training" [ ! -s "$out" ]
: >"$t/plain"
# shellcheck disable=SC2086
expect 3 "bvtool train: cannot write '$t/plain/x.ckpt': '$t/plain' is not a directory" "$bv" train $q --out "$t/plain/x.ckpt"
# a character device like /dev/null (made here: never the real one), as root
if mknod "$t/null" c 1 3 2>/dev/null; then
	# shellcheck disable=SC2086
	expect 3 "bvtool train: '$t/null' is not a regular file; refusing to replace it" "$bv" train $q --out "$t/null"
	assert "--out char device: still a char device" [ -c "$t/null" ]
	assert "--out char device: refused before training" [ ! -s "$out" ]
	assert "--out char device: no temporary file left" sh -c "! ls '$t' | grep -q 'null.tmp'"
else
	echo "skip: --out a character device: mknod failed (needs root)"
fi

# --- inputs must be regular files, read no further than their headers promise
# (D10): each a one-line error, quickly (timeout), in bounded memory (ulimit -v)
# (a sanitizer build reserves terabytes of address space: no ulimit -v there)
vlimit="ulimit -v 4000000;"
if ! sh -c "$vlimit"' exec "$@"' sh "$bv" --help >/dev/null 2>&1; then
	echo "note: bvtool does not run under ulimit -v (a sanitizer build): memory not bounded here"
	vlimit=
fi
bounded() { sh -c "$vlimit"' exec timeout 60 "$@"' bounded "$@"; }
# shellcheck disable=SC2086
expect 3 "bvtool train: '$t/fifo' is not a regular file" bounded "$bv" train --model mlp:8 --method kd --teacher "$t/fifo" --train-subset 100
for d in fifo-data zero-data bomb absurd; do
	mkdir -p "$t/$d"
	cp "$fm"/t10k-*.gz "$fm"/train-labels-idx1-ubyte.gz "$t/$d/"
done
mkfifo "$t/fifo-data/train-images-idx3-ubyte.gz"
expect 3 "bvtool train: '$t/fifo-data/train-images-idx3-ubyte.gz' is not a regular file" bounded "$bv" train --data "idx:$t/fifo-data"
ln -s /dev/zero "$t/zero-data/train-images-idx3-ubyte"
expect 3 "bvtool train: '$t/zero-data/train-images-idx3-ubyte' is not a regular file" bounded "$bv" train --data "idx:$t/zero-data"
ln -sf /dev/zero "$t/zero-data/t10k-labels-idx1-ubyte.gz"
rm "$t/zero-data/train-images-idx3-ubyte"
cp "$fm/train-images-idx3-ubyte.gz" "$t/zero-data/"
expect 3 "bvtool train: '$t/zero-data/t10k-labels-idx1-ubyte.gz' is not a regular file" bounded "$bv" train --data "idx:$t/zero-data"
# a gzip bomb: a header for 60000 28x28 images (47 MB), then 200 MB of zeros in
# an 870 kB file; inflating stops one byte past the promise
{ printf '\000\000\010\003\000\000\352\140\000\000\000\034\000\000\000\034'; head -c 200000000 /dev/zero; } |
	gzip -1 >"$t/bomb/train-images-idx3-ubyte.gz"
expect 4 "bvtool train: cannot read '$t/bomb/train-images-idx3-ubyte.gz': more data than its header promises (47040000 bytes)" bounded "$bv" train --data "idx:$t/bomb"
# a header promising absurd sizes: 60000 images of 65536x65536 pixels
{ printf '\000\000\010\003\000\000\352\140\000\001\000\000\000\001\000\000'; head -c 200000000 /dev/zero; } |
	gzip -1 >"$t/absurd/train-images-idx3-ubyte.gz"
expect_sub 4 "bvtool train: cannot read '$t/absurd/train-images-idx3-ubyte.gz': " bounded "$bv" train --data "idx:$t/absurd"

# --- bad model spec and teacher
expect_sub 2 "bvtool train: --model: unknown model spec 'mlp:12-x'" "$bv" train --model mlp:12-x --train-subset 100
"$TOOL_CKPT" "$t/t100.ckpt" mlp:8 1 28 28 100
expect 4 "bvtool train: checkpoint '$t/t100.ckpt' has 100 classes, the data has 10" "$bv" train --model mlp:8 --method kd --teacher "$t/t100.ckpt" --train-subset 100 --out "$t/x.ckpt"
expect_sub 3 "cannot open '$t/none.ckpt'" "$bv" train --model mlp:8 --method wsl --teacher "$t/none.ckpt" --train-subset 100
# a checkpoint with a valid CRC but damaged numbers is refused on load, naming
# the tensor (D15): non-finite weights, BN running statistics, absurd dims
kd="--model mlp:8 --method kd --train-subset 100 --epochs 1 --out $t/x.ckpt"
"$TOOL_CKPT" "$t/nan.ckpt" mlp:8 1 28 28 10 param 17 nan
# shellcheck disable=SC2086
expect 4 "bvtool train: checkpoint '$t/nan.ckpt': the weight of layer 1 (linear) holds a non-finite value (nan) at 17; the file is damaged" "$bv" train $kd --teacher "$t/nan.ckpt"
# mlp:8 on 784 inputs: layer 1 weight 6272 and bias 8, layer 3 weight 80, then its bias
"$TOOL_CKPT" "$t/inf.ckpt" mlp:8 1 28 28 10 param 6365 -inf
# shellcheck disable=SC2086
expect 4 "bvtool train: checkpoint '$t/inf.ckpt': the bias of layer 3 (linear) holds a non-finite value (-inf) at 5; the file is damaged" "$bv" train $kd --teacher "$t/inf.ckpt"
# cnn-small: layer 2 is a batch norm of 32 channels (running mean 0-31, variance 32-63)
"$TOOL_CKPT" "$t/bnvar.ckpt" cnn-small 1 28 28 10 buffer 40 -1
# shellcheck disable=SC2086
expect 4 "bvtool train: checkpoint '$t/bnvar.ckpt': the running variance of layer 2 (batch norm) holds a negative value (-1) at 8; the file is damaged" "$bv" train $kd --teacher "$t/bnvar.ckpt"
"$TOOL_CKPT" "$t/bnmean.ckpt" cnn-small 1 28 28 10 buffer 3 inf
# shellcheck disable=SC2086
expect 4 "bvtool train: checkpoint '$t/bnmean.ckpt': the running mean of layer 2 (batch norm) holds a non-finite value (inf) at 3; the file is damaged" "$bv" train $kd --teacher "$t/bnmean.ckpt"
"$TOOL_CKPT" "$t/bnscale.ckpt" cnn-small 1 28 28 10 param 288 nan
# shellcheck disable=SC2086
expect 4 "bvtool train: checkpoint '$t/bnscale.ckpt': the scale of layer 2 (batch norm) holds a non-finite value (nan) at 0; the file is damaged" "$bv" train $kd --teacher "$t/bnscale.ckpt"
# header fields (mlp:8: c at byte 21, h 25, w 29, classes 33), CRC recomputed
for f in "21 0 input shape 0x28x28" "25 2147483647 input shape 1x2147483647x28" "29 4294967295 input shape 1x28x4294967295" "33 0 class count 0" "33 1000000 class count 1000000"; do
	set -- $f
	"$TOOL_CKPT" "$t/dims.ckpt" mlp:8 1 28 28 10
	"$TOOL_CKPT" --patch "$t/dims.ckpt" "$1" "$2"
	shift 2
	case "$*" in
	input*) range="(at most 16777216 values, each from 1)" ;;
	*) range="(expected 1 to 65536)" ;;
	esac
	# shellcheck disable=SC2086
	expect 4 "bvtool train: checkpoint '$t/dims.ckpt': $* is out of range $range; the file is damaged" "$bv" train $kd --teacher "$t/dims.ckpt"
done
# the spec 'mlp:8' (bytes 16-20) made 'mlp:' and an escape byte
"$TOOL_CKPT" "$t/spec.ckpt" mlp:8 1 28 28 10
"$TOOL_CKPT" --patch "$t/spec.ckpt" 17 0x1b3a706c
# shellcheck disable=SC2086
expect 4 "bvtool train: checkpoint '$t/spec.ckpt': its model spec holds byte 0x1b at 4; the file is damaged" "$bv" train $kd --teacher "$t/spec.ckpt"
assert "no checkpoint written from a damaged teacher" [ ! -e "$t/x.ckpt" ]
assert "no checkpoint written on a bad teacher" [ ! -e "$t/x.ckpt" ]

# --- divergence: stop, say where, suggest a lower --lr, write nothing
expect_sub 5 "bvtool train: training diverged at epoch 1 step" "$bv" train --model mlp:64 --lr 90 --momentum 0.99 --train-subset 2000 --epochs 1 --out "$t/x.ckpt"
assert "diverged message suggests a lower --lr" grep -q "try a lower --lr" "$err"
assert "no checkpoint written after divergence" [ ! -e "$t/x.ckpt" ]

# --- a real short run: teacher, then kd and wsl students; determinism
"$bv" train --model mlp:128 --train-subset 10000 --epochs 3 --seed 3 --out "$t/a.ckpt" >"$t/a.log"
"$bv" train --model mlp:128 --train-subset 10000 --epochs 3 --seed 3 --out "$t/b.ckpt" >"$t/b.log"
assert "same command, same seed: byte-identical checkpoints" cmp -s "$t/a.ckpt" "$t/b.ckpt"
assert "last line is 'test accuracy: NN.NN%'" grep -q -E '^test accuracy: [0-9]+\.[0-9]{2}%$' "$t/a.log"
assert "one line per epoch" [ "$(grep -c "^epoch " "$t/a.log")" = 3 ]
acc=$(tail -n 1 "$t/a.log" | sed 's/test accuracy: \([0-9.]*\)%/\1/')
assert "10000-sample mlp:128 reaches 80% in 3 epochs (got $acc)" awk "BEGIN { exit !($acc >= 80) }"
for m in kd wsl kd-filter; do
	run "$bv" train --model mlp:16 --method $m --teacher "$t/a.ckpt" --lr 0.01 --train-subset 3000 --epochs 1
	assert "$m student trains (status $status)" [ "$status" = 0 ]
	assert "$m student reports its accuracy" grep -q '^test accuracy: ' "$out"
done
run "$bv" train --model mlp:16 --method wsl --teacher "$t/a.ckpt" --lr 0.01 --train-subset 3000 --epochs 1
assert "wsl epoch line shows the mean WSL weight" grep -q -E ' weight [0-9.]+ ' "$out"
run "$bv" train --model mlp:16 --train-subset 3000 --epochs 1 --seed 4 --threads 2 --out "$t/c.ckpt"
assert "--threads 2 runs" [ "$status" = 0 ]
rm -rf "$t"
finish
