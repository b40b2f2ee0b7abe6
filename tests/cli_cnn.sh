#!/bin/sh
# Convolutional networks and CIFAR end to end: tiny CIFAR-10 and CIFAR-100 sets
# written in the real binary layout, bvtool train with resnet8 / vgg8 / wrn-16-1
# and crop-flip augmentation (byte-identical for the same seed), a distilled
# student with the teacher's batch norm in train mode, a small collect +
# decompose with cnn-small on Fashion-MNIST, and the bad inputs.
# Needs BVTOOL, BV_TMP, python3 and Fashion-MNIST.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_cnn.$$
mkdir -p "$t"
cd "$t"

# CIFAR-10: data_batch_1..5 (40 records each) and test_batch (50); CIFAR-100: train, test
/usr/bin/python3 - <<'EOF'
import os, random
random.seed(7)
def records(n, classes, two_labels):
    out = bytearray()
    for i in range(n):
        y = i % classes
        if two_labels:
            out += bytes([y % 20, y])
        else:
            out += bytes([y])
        # a class-dependent colour plus noise, so that a few epochs learn something
        for c in range(3):
            base = (y * 37 + c * 80) % 256
            out += bytes(min(255, max(0, base + random.randint(-40, 40))) for _ in range(1024))
    return bytes(out)
os.makedirs("c10", exist_ok=True)
for b in range(1, 6):
    open(f"c10/data_batch_{b}.bin", "wb").write(records(40, 10, False))
open("c10/test_batch.bin", "wb").write(records(50, 10, False))
os.makedirs("c100", exist_ok=True)
open("c100/train.bin", "wb").write(records(200, 100, True))
open("c100/test.bin", "wb").write(records(100, 100, True))
EOF

# --- train CNNs on CIFAR, with augmentation, reproducibly
for m in resnet8 vgg8 wrn-16-1; do
	run "$bv" train --data cifar10:c10 --model $m --epochs 1 --batch 32 --augment crop-flip --out $m.ckpt
	assert "$m trains on CIFAR-10 (status $status)" [ "$status" = 0 ]
	assert "$m reports its accuracy" grep -q -E '^test accuracy: [0-9]+\.[0-9]{2}%$' "$out"
done
assert "the data line names the shape" grep -q "^data cifar10: 200 train, 50 test, 3x32x32, 10 classes" "$out"
"$bv" train --data cifar10:c10 --model resnet8 --epochs 1 --batch 32 --augment crop-flip --out again.ckpt >/dev/null
assert "same seed, same augmentation: byte-identical resnet8 checkpoints" cmp -s resnet8.ckpt again.ckpt
"$bv" train --data cifar10:c10 --model resnet8 --epochs 1 --batch 32 --augment crop-flip --seed 2 --out other.ckpt >/dev/null
assert "another seed gives another model" sh -c '! cmp -s resnet8.ckpt other.ckpt'
"$bv" train --data cifar10:c10 --model resnet8 --epochs 1 --batch 32 --out noaug.ckpt >/dev/null
assert "augmentation changes the training" sh -c '! cmp -s resnet8.ckpt noaug.ckpt'
run "$bv" train --data cifar100:c100 --model resnet8 --epochs 1 --batch 32
assert "resnet8 trains on CIFAR-100 (status $status)" [ "$status" = 0 ]
assert "100 classes" grep -q "^data cifar100: 200 train, 100 test, 3x32x32, 100 classes" "$out"

# --- a student distilled from a CNN teacher, with its batch norm in train mode
run "$bv" train --data cifar10:c10 --model cnn-small --method wsl --teacher resnet8.ckpt --temp 4 --epochs 1 --batch 32 --augment crop-flip --teacher-bn train --lr 0.01
assert "wsl student of a resnet8 teacher (status $status)" [ "$status" = 0 ]
assert "its mean WSL weight is printed" grep -q -E ' weight [0-9.]+ ' "$out"

# --- bad input
expect 2 "bvtool train: --augment: unknown augmentation 'mixup' (expected none or crop-flip)" "$bv" train --data cifar10:c10 --model resnet8 --augment mixup
expect 2 "bvtool train: --teacher-bn: expected eval or train, got 'frozen'" "$bv" train --data cifar10:c10 --model cnn-small --method kd --teacher resnet8.ckpt --teacher-bn frozen
expect 4 "bvtool train: checkpoint 'resnet8.ckpt' takes 3x32x32 inputs, the data has 1x28x28" "$bv" train --model cnn-small --method kd --teacher resnet8.ckpt --train-subset 100
cp -r c10 bad
head -c 3000 c10/test_batch.bin >bad/test_batch.bin
expect 4 "bvtool train: cannot read '$t/bad/test_batch.bin': 3000 bytes is not a whole number of 3073-byte records" "$bv" train --data "cifar10:$t/bad" --model resnet8
expect 3 "bvtool train: data directory '$t/none' does not exist" "$bv" train --data "cifar10:$t/none" --model resnet8
# more records than the data set's files hold, an empty file, labels out of range
head -c $((10001 * 3073)) /dev/zero >bad/test_batch.bin
expect 4 "bvtool train: cannot read '$t/bad/test_batch.bin': 10001 records (expected at most 10000)" "$bv" train --data "cifar10:$t/bad" --model resnet8
: >bad/test_batch.bin
expect 4 "bvtool train: cannot read '$t/bad/test_batch.bin': empty file (expected 3073-byte records)" "$bv" train --data "cifar10:$t/bad" --model resnet8
cp c10/test_batch.bin bad/test_batch.bin
printf '\012' | dd of=bad/test_batch.bin bs=1 seek=$((3 * 3073)) conv=notrunc 2>/dev/null
expect 4 "bvtool train: cannot read '$t/bad/test_batch.bin': record 3 has label 10 (expected 0 to 9)" "$bv" train --data "cifar10:$t/bad" --model resnet8
cp -r c100 bad100
printf '\024' | dd of=bad100/train.bin bs=1 seek=$((5 * 3074)) conv=notrunc 2>/dev/null
expect 4 "bvtool train: cannot read '$t/bad100/train.bin': record 5 has coarse label 20 (expected 0 to 19)" "$bv" train --data "cifar100:$t/bad100" --model resnet8
printf '\144' | dd of=bad100/test.bin bs=1 seek=$((2 * 3074 + 1)) conv=notrunc 2>/dev/null
cp c100/train.bin bad100/
expect 4 "bvtool train: cannot read '$t/bad100/test.bin': record 2 has label 100 (expected 0 to 99)" "$bv" train --data "cifar100:$t/bad100" --model resnet8
# not regular files (D10): a FIFO and a link to /dev/zero, refused at once
rm bad/test_batch.bin
mkfifo bad/test_batch.bin
expect 3 "bvtool train: '$t/bad/test_batch.bin' is not a regular file" timeout 60 "$bv" train --data "cifar10:$t/bad" --model resnet8
rm bad/data_batch_2.bin
ln -s /dev/zero bad/data_batch_2.bin
expect 3 "bvtool train: '$t/bad/data_batch_2.bin' is not a regular file" timeout 60 "$bv" train --data "cifar10:$t/bad" --model resnet8

# --- collect and decompose with a convolutional student on Fashion-MNIST
run "$bv" collect --db cnn.db --train-subset 1000 --teacher cnn-small --teacher-epochs 1 --student cnn-small --epochs 2 --seeds 2 --temps 2,4,8 --augment crop-flip --jobs 2
assert "collect with cnn-small and augmentation (status $status)" [ "$status" = 0 ]
assert "augmentation is part of the collection's settings" [ "$(sqlite3 cnn.db "SELECT value FROM config WHERE key = 'augment'")" = crop-flip ]
run "$bv" decompose --db cnn.db --bootstrap 20
assert "decompose on cnn-small students (status $status)" [ "$status" = 0 ]
assert "the correlation across 3 temperatures" grep -q "^correlation (kd, test split, epoch 2, 3 temperatures, 2 seeds)" "$out"
expect 4 "bvtool collect: database 'cnn.db' was collected with --augment crop-flip, not none (use another --db)" "$bv" collect --db cnn.db --train-subset 1000 --teacher cnn-small --teacher-epochs 1 --student cnn-small --epochs 2 --seeds 2 --temps 2,4,8

cd /
rm -rf "$t"
finish
