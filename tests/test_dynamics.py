#!/usr/bin/python3
"""bvtool dynamics against NumPy, on databases bvtool collects here.

    /usr/bin/python3 tests/test_dynamics.py BUILD_DIR

A small collection (1000 training samples, an mlp:8 student over 6 epochs, 2 seeds, ce and kd
at T = 4), then `bvtool dynamics`: every row of the dynamics table recomputed here from the
snapshots (float32 logits -> float64 softmax, argmax the first maximum as math/'s), the
doubles to 1e-12 and the integers exactly, NULL first_learned where the sample is wrong at
the last recorded epoch; a second run leaves the same rows (idempotent); the view
dynamics_by_method equals the mean over the seeds; a collection that records epochs 2 and 5
only is named as sparse in the output and its rows say n_epochs = 2; the teacher has no
rows. Prints each failure, then `test_dynamics: N checks, M failed` and the largest
difference; exits 1 when any check failed.
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


def reference(con, split):
    """{(run_id, sample_idx): row} recomputed from the snapshots of every done student."""
    labels = np.array([r[0] for r in con.execute(
        "SELECT label FROM samples WHERE split = ? ORDER BY sample_idx", (split,))])
    out = {}
    runs = con.execute("SELECT id FROM runs WHERE status = 'done' AND method != 'teacher'")
    for (run_id,) in runs.fetchall():
        snaps = con.execute("SELECT epoch, n, k, logits FROM snapshots WHERE run_id = ? AND "
                            "split = ? ORDER BY epoch", (run_id, split)).fetchall()
        if not snaps:
            continue
        epochs = [s[0] for s in snaps]
        z = np.stack([np.frombuffer(s[3], "<f4").reshape(s[1], s[2]) for s in snaps])
        z64 = z.astype(np.float64)
        m = z64.max(axis=2, keepdims=True)
        logp = z64 - m - np.log(np.exp(z64 - m).sum(axis=2, keepdims=True))
        n = len(labels)
        p = np.exp(logp[:, np.arange(n), labels])          # (E, N)
        correct = z.argmax(axis=2) == labels[None, :]        # (E, N), first maximum
        E = len(epochs)
        for i in range(n):
            c = correct[:, i]
            first = None
            if c[-1]:
                j = E - 1
                while j > 0 and c[j - 1]:
                    j -= 1
                first = epochs[j]
            forgetting = int(np.sum(c[:-1] & ~c[1:]))
            out[(run_id, i)] = (first, forgetting, float(c.mean()), float(p[:, i].mean()),
                                float(p[:, i].std()), E)
    return out


def compare(con, split, what):
    global max_diff
    ref = reference(con, split)
    got = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT run_id, sample_idx, first_learned, forgetting, correctness, confidence, "
        "variability, n_epochs FROM dynamics WHERE split = ?", (split,))}
    check(len(ref) > 0, f"{what}: the reference has rows")
    check(set(got) == set(ref), f"{what}: rows for exactly the done students' samples "
          f"({len(got)} vs {len(ref)})")
    bad = 0
    for key, r in ref.items():
        g = got.get(key)
        if g is None:
            continue
        d = max(abs(g[2] - r[2]), abs(g[3] - r[3]), abs(g[4] - r[4]))
        max_diff = max(max_diff, d)
        if g[0] != r[0] or g[1] != r[1] or g[5] != r[5] or d > 1e-12:
            bad += 1
            if bad <= 5:
                print(f"  {what} run {key[0]} sample {key[1]}: got {g}, want {r}")
    check(bad == 0, f"{what}: {bad} rows differ from NumPy")
    return ref


def main():
    tmp = tempfile.mkdtemp(dir=os.environ.get("TMPDIR"))
    db = os.path.join(tmp, "d.db")
    common = ["--train-subset", "1000", "--teacher", "mlp:16", "--teacher-epochs", "1",
              "--student", "mlp:8", "--epochs", "6", "--seeds", "2", "--temps", "4",
              "--methods", "ce,kd"]
    bvtool("collect", "--db", db, *common)
    out = bvtool("dynamics", "--db", db)
    check(out.startswith("dynamics of the test split: 4 student runs, 10000 samples"),
          f"the summary's first line: {out.splitlines()[:1]}")
    check("sparse" not in out, "6 recorded epochs are not sparse")
    con = sqlite3.connect(db)
    check(con.execute("PRAGMA user_version").fetchone()[0] == 5, "schema version 5")
    ref = compare(con, "test", "6 epochs")
    # the samples of this case include both kinds the brief names
    check(any(r[1] >= 2 for r in ref.values()), "some sample is forgotten at least twice")
    check(any(r[0] is None and r[2] == 0 for r in ref.values()), "some sample is never learned")
    check(con.execute("SELECT count(*) FROM dynamics d JOIN runs r ON r.id = d.run_id "
                      "WHERE r.method = 'teacher'").fetchone()[0] == 0, "no teacher rows")
    before = con.execute("SELECT * FROM dynamics ORDER BY 1, 2, 3").fetchall()
    con.close()
    bvtool("dynamics", "--db", db)
    con = sqlite3.connect(db)
    after = con.execute("SELECT * FROM dynamics ORDER BY 1, 2, 3").fetchall()
    check(before == after, "a second run leaves the same rows")
    # the view: the mean over the seeds of (method, temperature)
    view = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT method, sample_idx, n_runs, first_learned, n_learned, forgetting, correctness, "
        "confidence, variability FROM dynamics_by_method WHERE split = 'test'")}
    runs = dict(con.execute("SELECT id, method FROM runs").fetchall())
    vbad = 0
    for method in ("ce", "kd"):
        ids = [k for k, v in runs.items() if v == method]
        for i in range(0, 10000, 97):
            rows = [ref[(rid, i)] for rid in ids]
            learned = [r[0] for r in rows if r[0] is not None]
            want = (len(rows), float(np.mean(learned)) if learned else None, len(learned),
                    float(np.mean([r[1] for r in rows])),
                    *(float(np.mean([r[j] for r in rows])) for j in (2, 3, 4)))
            g = view[(method, i)]
            ok = g[0] == want[0] and g[2] == want[2] and (
                (g[1] is None and want[1] is None) or
                (g[1] is not None and want[1] is not None and abs(g[1] - want[1]) < 1e-12)) and \
                all(abs(g[j] - want[j]) < 1e-12 for j in (3, 4, 5, 6))
            if not ok:
                vbad += 1
                if vbad <= 3:
                    print(f"  view {method} sample {i}: got {g}, want {want}")
    check(vbad == 0, f"dynamics_by_method: {vbad} rows differ from the mean over seeds")
    con.close()

    # sparse: two recorded epochs
    db2 = os.path.join(tmp, "sparse.db")
    bvtool("collect", "--db", db2, *common, "--record-epochs", "2,5")
    out = bvtool("dynamics", "--db", db2)
    check("sparse: 4 runs have fewer than 3 recorded test epochs (ce seed 1: 2" in out,
          f"the sparse runs are named: {out}")
    con = sqlite3.connect(db2)
    check(con.execute("SELECT DISTINCT n_epochs FROM dynamics").fetchall() == [(2,)],
          "n_epochs says 2")
    compare(con, "test", "epochs 2 and 5")
    con.close()

    print(f"test_dynamics: {bvcheck.checks} checks, {bvcheck.failed} failed; largest difference {max_diff:.3g}")
    return 1 if bvcheck.failed else 0


if __name__ == "__main__":
    bvcheck.BV = os.path.join(sys.argv[1], "bvtool")
    sys.exit(main())
