#!/usr/bin/python3
"""Small import layouts for tests/cli_import.sh (docs/import.md), and a comparison
of two databases' runs, metrics and snapshots.

  import_layout.py make DIR        a good layout: 5 classes, 40 test and 60 train
                                   samples, a teacher, ce/kd runs of 2 seeds, in every
                                   form the manifest allows (one (E, N, K) array, a list
                                   of per-epoch arrays, .npz members stored and deflated,
                                   float16/32/64, int8/int64 labels)
  import_layout.py same A.db B.db  exit 0 when the two databases hold the same runs
                                   (by method, temperature, seed), metrics rows and
                                   snapshots byte for byte; else print the first
                                   difference and exit 1
"""
import json
import os
import sqlite3
import sys

import numpy as np

K, N_TEST, N_TRAIN, E = 5, 40, 60, 3


def make(out):
    os.makedirs(out)
    rng = np.random.default_rng(7)
    y_test = rng.integers(0, K, N_TEST)
    y_train = rng.integers(0, K, N_TRAIN)
    np.save(f"{out}/labels_test.npy", y_test.astype(np.int64))
    np.save(f"{out}/labels_train.npy", y_train.astype(np.int8))
    np.save(f"{out}/teacher_test.npy", rng.normal(size=(N_TEST, K)).astype(np.float32))
    np.save(f"{out}/teacher_train.npy", rng.normal(size=(N_TRAIN, K)).astype(np.float32))
    runs = []
    for seed in (1, 2):
        inbag = np.bincount(rng.integers(0, N_TRAIN, N_TRAIN), minlength=N_TRAIN)
        np.save(f"{out}/inbag_s{seed}.npy", inbag.astype(np.int32))
        # ce: one (E, N, K) float32 array per split
        np.save(f"{out}/ce_s{seed}_test.npy", rng.normal(size=(E, N_TEST, K)).astype(np.float32))
        np.save(f"{out}/ce_s{seed}_train.npy", rng.normal(size=(E, N_TRAIN, K)).astype(np.float64))
        runs.append({"method": "ce", "seed": seed, "model": "net-s", "epochs": [1, 2, 3],
                     "logits": {"test": f"ce_s{seed}_test.npy", "train": f"ce_s{seed}_train.npy"},
                     "inbag": f"inbag_s{seed}.npy", "lr_note": "cosine"})
        # kd: one (N, K) array per epoch, float16 test, and .npz members for train
        paths = []
        for e in range(E):
            p = f"kd_T4_s{seed}_e{e + 1}_test.npy"
            np.save(f"{out}/{p}", rng.normal(size=(N_TEST, K)).astype(np.float16))
            paths.append(p)
        members = {f"e{e + 1}": rng.normal(size=(N_TRAIN, K)).astype(np.float32) for e in range(E)}
        (np.savez_compressed if seed == 1 else np.savez)(f"{out}/kd_s{seed}_train.npz", **members)
        runs.append({"method": "kd", "temperature": 4, "alpha": 2.25, "gamma": 1, "seed": seed,
                     "model": "net-s", "epochs": [1, 2, 3], "test_acc": [20.0, 40.0, 62.5],
                     "logits": {"test": paths,
                                "train": [f"kd_s{seed}_train.npz:e{e + 1}" for e in range(E)]},
                     "inbag": f"inbag_s{seed}.npy"})
    manifest = {"format": "bvtool-import", "version": 1, "dataset": "toy", "classes": K,
                "labels": {"test": "labels_test.npy", "train": "labels_train.npy"},
                "teacher": {"model": "net-l", "epoch": 9,
                            "logits": {"test": "teacher_test.npy", "train": "teacher_train.npy"}},
                "runs": runs, "lab": {"notebook": "toy.ipynb"}}
    with open(f"{out}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)


RUN_KEY = "r.method, IFNULL(r.temperature, -1), r.seed"


def rows(db, sql):
    return sorted(db.execute(sql).fetchall(), key=repr)


def same(a_path, b_path):
    a, b = sqlite3.connect(a_path), sqlite3.connect(b_path)
    checks = {
        "runs": f"SELECT {RUN_KEY}, r.alpha, r.gamma, r.status, r.test_acc, r.epochs, r.model, "
                "r.seconds FROM runs r",
        "metrics": f"SELECT {RUN_KEY}, m.epoch, m.lr, m.train_loss, m.train_acc, m.test_acc, "
                   "m.wsl_weight, m.filtered, m.seconds FROM metrics m JOIN runs r ON r.id = m.run_id",
        "snapshots": f"SELECT {RUN_KEY}, s.epoch, s.split, s.n, s.k, s.logits FROM snapshots s "
                     "JOIN runs r ON r.id = s.run_id",
        "samples": "SELECT split, sample_idx, label FROM samples",
        "inbag": "SELECT seed, sample_idx, count FROM inbag",
    }
    for name, sql in checks.items():
        ra, rb = rows(a, sql), rows(b, sql)
        if not ra and name != "inbag":
            print(f"{a_path}: no {name} rows")
            return 1
        if ra != rb:
            diff = next((x, y) for x, y in zip(ra + [None] * len(rb), rb + [None] * len(ra))
                        if x != y)
            print(f"{name} differ: {a_path} {str(diff[0])[:200]} / {b_path} {str(diff[1])[:200]}")
            return 1
        print(f"{name}: {len(ra)} rows equal")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "same":
        sys.exit(same(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
