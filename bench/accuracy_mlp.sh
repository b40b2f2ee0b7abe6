#!/bin/sh
# Accuracy targets of issue 2 on Fashion-MNIST, default settings (SGD lr 0.05,
# momentum 0.9, wd 5e-4, cosine, batch 128, seed 1, 10 epochs):
#   teacher mlp:1200-1200 (target >= 89.0%), student mlp:64 with ce (target >= 86%),
# and, for reference, mlp:64 students with kd and wsl at T=4, alpha=2.25, lr 0.01.
# Usage: bench/accuracy_mlp.sh [BUILD_DIR]   (about 2 minutes on this machine)
set -eu
build=${1:-build}
bv="$build/bvtool"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
acc() { tail -n 1 "$1" | sed 's/test accuracy: //'; }
"$bv" train --model mlp:1200-1200 --epochs 10 --out "$tmp/teacher.ckpt" >"$tmp/teacher.log"
"$bv" train --model mlp:64 --epochs 10 >"$tmp/ce.log"
"$bv" train --model mlp:64 --epochs 10 --lr 0.01 >"$tmp/ce01.log"
for m in kd wsl; do
	"$bv" train --model mlp:64 --method $m --teacher "$tmp/teacher.ckpt" --lr 0.01 --epochs 10 >"$tmp/$m.log"
done
echo "| model | method | lr | test accuracy | target |"
echo "|---|---|---|---|---|"
echo "| mlp:1200-1200 (teacher) | ce | 0.05 | $(acc "$tmp/teacher.log") | >= 89.0% |"
echo "| mlp:64 | ce | 0.05 | $(acc "$tmp/ce.log") | >= 86% |"
echo "| mlp:64 | ce | 0.01 | $(acc "$tmp/ce01.log") | |"
echo "| mlp:64 | kd (T=4, alpha=2.25) | 0.01 | $(acc "$tmp/kd.log") | |"
echo "| mlp:64 | wsl (T=4, alpha=2.25) | 0.01 | $(acc "$tmp/wsl.log") | |"
