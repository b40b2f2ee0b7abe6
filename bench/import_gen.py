#!/usr/bin/python3
"""The collection of issue 12's import benchmark, as the import layout:

    import_gen.py DIR [--seeds 16] [--epochs 10] [--n 10000] [--classes 100]

CIFAR-100-sized: N test samples x K classes, a teacher, ce/kd/wsl (T = 4)
students of each seed, E recorded epochs, one (E, N, K) float32 array per run
(16 x 3 x 10 x 10,000 x 100 x 4 bytes = 1.92 GB). The logits are drawn so
that a student is right about 60% of the time and the replicas differ, so the
decomposition does real work. Written once; an existing DIR is kept.
"""
import argparse
import json
import os

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--seeds", type=int, default=16)
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--n", type=int, default=10000)
ap.add_argument("--classes", type=int, default=100)
a = ap.parse_args()
if os.path.exists(f"{a.dir}/manifest.json"):
    raise SystemExit(0)
os.makedirs(a.dir, exist_ok=True)
rng = np.random.default_rng(12)
N, K, E = a.n, a.classes, a.epochs
y = rng.integers(0, K, N)
np.save(f"{a.dir}/labels_test.npy", y)
onehot = np.zeros((N, K), np.float32)
onehot[np.arange(N), y] = 1
np.save(f"{a.dir}/teacher_test.npy", (rng.normal(size=(N, K)) + 4 * onehot).astype(np.float32))
runs = []
for seed in range(1, a.seeds + 1):
    for method in ("ce", "kd", "wsl"):
        name = f"{method}_s{seed}_test.npy"
        out = np.lib.format.open_memmap(f"{a.dir}/{name}", mode="w+", dtype="<f4", shape=(E, N, K))
        for e in range(E):
            out[e] = rng.normal(size=(N, K)).astype(np.float32) * 2 + (1 + e / E) * 2.5 * onehot
        out.flush()
        del out
        run = {"method": method, "seed": seed, "model": "resnet20", "epochs": list(range(1, E + 1)),
               "logits": {"test": name}}
        if method != "ce":
            run.update(temperature=4, alpha=2.25, gamma=1)
        runs.append(run)
m = {"format": "bvtool-import", "version": 1, "dataset": "cifar100-sized", "classes": K,
     "labels": {"test": "labels_test.npy"},
     "teacher": {"model": "resnet56", "logits": {"test": "teacher_test.npy"}}, "runs": runs}
json.dump(m, open(f"{a.dir}/manifest.json", "w"), indent=1)
