#!/usr/bin/python3
"""The variance split by its source (collect --inits M, decompose) against NumPy.

    /usr/bin/python3 tests/test_varsplit.py BUILD_DIR

A small collection made here (1000 training samples, an mlp:8 student over 3 epochs, 3 bootstrap
draws x 2 initialisations, ce and kd at T = 4, the training split recorded), decomposed on the
test split and on the out-of-bag training samples. Every sample_stats row is recomputed from the
snapshots (float32 logits -> float64 log-softmax): the total variance -log sum_k exp(mean_r log
q_r[k]); per draw d, lbar_d = mean_i log q_{d,i}, V_init(d) = -log sum_k exp(lbar_d[k]); var_init
= mean_d V_init(d) and var_data = -log sum_k exp(mean_d (lbar_d[k] + V_init(d))), over the
sample's out-of-bag draws for oob. Checked to 1e-12: variance, var_init, var_data, and the
identity variance = var_init + var_data in the rows themselves. Also: the decompositions row
names the replicas as seed:init; the two inits of a draw share its in-bag counts and differ in
their weights; a collection of one init (no --inits) has NULL var_init and var_data everywhere.
Prints each failure, then `test_varsplit: N checks, M failed` and the largest difference; exits
1 when any check failed.
"""
import os
import sqlite3
import subprocess
import sys
import tempfile

import numpy as np

import bvcheck
from bvcheck import bvtool, check

max_diff = 0.0


def close(a, b, msg, tol=1e-12):
    global max_diff
    d = abs(a - b)
    max_diff = max(max_diff, d)
    check(d <= tol * max(1.0, abs(b)), f"{msg}: {a!r} vs NumPy {b!r}")


def lse(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def logits(con, method, T, seed, init, epoch, snap):
    row = con.execute(
        "SELECT s.n, s.k, s.logits FROM snapshots s JOIN runs r ON r.id = s.run_id "
        "WHERE r.method = ? AND IFNULL(r.temperature, -1) = ? AND r.seed = ? AND r.init = ? "
        "AND s.epoch = ? AND s.split = ?", (method, T, seed, init, epoch, snap)).fetchone()
    return np.frombuffer(row[2], "<f4").reshape(row[0], row[1]).astype(np.float64)


def reference(con, method, T, epoch, split, draws, M):
    """(variance, var_init, var_data, mask) per sample: mask says which have a row."""
    snap = "test" if split == "test" else "train"
    # (D, M, N, K) log-softmax
    lq = np.stack([np.stack([logits(con, method, T, d, i, epoch, snap) for i in range(1, M + 1)])
                   for d in draws])
    lq = lq - lse(lq, 3)[..., None]
    D, _, N, K = lq.shape
    if split == "oob":
        oob = np.stack([np.array([c for (c,) in con.execute(
            "SELECT count FROM inbag WHERE seed = ? ORDER BY sample_idx", (d,))]) == 0
            for d in draws])                                   # (D, N)
    else:
        oob = np.ones((D, N), bool)
    w = oob.astype(np.float64)                                 # (D, N)
    nd = w.sum(axis=0)                                         # draws per sample
    lbar_d = lq.mean(axis=1)                                   # (D, N, K)
    v_init_d = -lse(lbar_d, 2)                                 # (D, N)
    with np.errstate(invalid="ignore", divide="ignore"):
        lbar = (w[..., None] * lbar_d).sum(axis=0) / nd[:, None]
        variance = -lse(lbar, 1)
        var_init = (w * v_init_d).sum(axis=0) / nd
        g = lbar_d + v_init_d[..., None]
        gbar = (w[..., None] * g).sum(axis=0) / nd[:, None]
        var_data = -lse(gbar, 1)
    return variance, var_init, var_data, nd * M >= 2


def compare(con, split, draws, M, epoch, T):
    rows = 0
    for method, t in (("ce", -1), ("kd", T)):
        v, vi, vd, mask = reference(con, method, t, epoch, split, draws, M)
        got = con.execute("SELECT sample_idx, variance, var_init, var_data FROM sample_stats "
                          "WHERE split = ? AND epoch = ? AND temperature = ? AND method = ? "
                          "ORDER BY sample_idx", (split, epoch, T, method)).fetchall()
        check(len(got) == int(mask.sum()),
              f"{split} {method}: {len(got)} rows, NumPy has {int(mask.sum())} samples")
        for i, var, var_init, var_data in got:
            if var_init is None or var_data is None:
                check(False, f"{split} {method} sample {i}: var_init/var_data NULL")
                continue
            close(var, v[i], f"{split} {method} sample {i} variance")
            close(var_init, vi[i], f"{split} {method} sample {i} var_init")
            close(var_data, vd[i], f"{split} {method} sample {i} var_data")
            close(var_init + var_data, var, f"{split} {method} sample {i} identity")
            rows += 1
    return rows


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    bvcheck.BV = os.path.join(os.path.abspath(sys.argv[1]), "bvtool")
    common = ["--train-subset", "1000", "--teacher", "mlp:32", "--teacher-epochs", "2",
              "--student", "mlp:8", "--epochs", "3", "--methods", "ce,kd", "--temps", "4",
              "--jobs", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "inits.db")
        bvtool("collect", "--db", db, *common, "--seeds", "3", "--inits", "2", "--record-train")
        out = bvtool("decompose", "--db", db)
        check("variance by source: init" in out and "(3 draws x 2 inits)" in out,
              "decompose says the variance by source: " + out)
        check("|variance - var_init - var_data|" in out, "decompose names the split's identity")
        with sqlite3.connect(db) as con:
            n = compare(con, "test", [1, 2, 3], 2, 3, 4.0)
            seeds = con.execute("SELECT DISTINCT seeds FROM decompositions").fetchall()
            check(seeds == [("1:1,1:2,2:1,2:2,3:1,3:2",)], f"decompositions.seeds {seeds}")
            inits = con.execute("SELECT init, count(*) FROM runs WHERE method != 'teacher' "
                                "GROUP BY init").fetchall()
            check(inits == [(1, 6), (2, 6)], f"runs per init {inits}")
            a = logits(con, "ce", -1, 1, 1, 3, "test")
            b = logits(con, "ce", -1, 1, 2, 3, "test")
            check(not np.array_equal(a, b), "the two inits of seed 1 trained the same model")
        bvtool("decompose", "--db", db, "--split", "oob")
        with sqlite3.connect(db) as con:
            n_oob = compare(con, "oob", [1, 2, 3], 2, 3, 4.0)
        check(n > 0 and n_oob > 0, f"rows compared: test {n}, oob {n_oob}")

        # one init: no split anywhere
        one = os.path.join(tmp, "one.db")
        bvtool("collect", "--db", one, *common, "--seeds", "2")
        bvtool("decompose", "--db", one)
        with sqlite3.connect(one) as con:
            bad = con.execute("SELECT count(*) FROM sample_stats WHERE var_init IS NOT NULL "
                              "OR var_data IS NOT NULL").fetchone()[0]
            total = con.execute("SELECT count(*) FROM sample_stats").fetchone()[0]
            check(total > 0 and bad == 0, f"one init: {bad} of {total} rows have a split")
            seeds = con.execute("SELECT DISTINCT seeds FROM decompositions").fetchall()
            check(seeds == [("1,2",)], f"one init: decompositions.seeds {seeds}")
    print(f"test_varsplit: {bvcheck.checks} checks, {bvcheck.failed} failed; largest difference {max_diff:.3g}")
    sys.exit(1 if bvcheck.failed else 0)


if __name__ == "__main__":
    main()
