#!/usr/bin/python3
"""The baseline of issue 4: `bvtool decompose --split test --criterion bv` for one
temperature, written the straightforward way with NumPy and Python's sqlite3.

    decompose_numpy.py DB [--temp T] [--table NAME]

Reads the finished runs of DB at temperature T (default 4): ce (temperature NULL),
kd and wsl (temperature T), their test snapshots at every epoch that all of them
recorded, the test labels and the teacher's last test snapshot. Per epoch and
method it stacks the B paired seeds into a (B, N, K) float64 array and applies
the formulas of analysis/analysis.h, vectorised over samples and replicas:

    log q_r  = log_softmax(z_r)                (max subtracted)
    l        = mean_r log q_r
    log Z    = logsumexp_k l
    bias     = -l[y] + log Z,  variance = -log Z,  loss = -l[y]

and regularization = (bias_m > bias_ce) & (variance_m < variance_ce) for kd and
wsl (NULL for ce). It also fills the other columns bvtool writes: p_true (mean
q_r[y]), acc (share of replicas whose first argmax is y), teacher_p_true
(softmax of the teacher's logits at y) and, for kd and wsl, wsl_weight (mean
over replicas of 1 - exp(-CE_s / (CE_t + 1e-7))).

The rows go to table NAME (default sample_stats_numpy, the columns and primary
key of sample_stats) of DB itself, replacing that temperature's earlier rows,
with executemany in one transaction. Run it on a copy of a bvtool database:
it writes into the file. Phase times go to stderr.
"""
import argparse
import sqlite3
import sys
import time

import numpy as np

METHODS = ("ce", "kd", "wsl")


def log_softmax(z):
    """log_softmax over the last axis, max subtracted."""
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db")
    ap.add_argument("--temp", type=float, default=4.0)
    ap.add_argument("--table", default="sample_stats_numpy")
    a = ap.parse_args()
    T = a.temp
    t0 = time.perf_counter()
    t_read = t_comp = 0.0

    con = sqlite3.connect(a.db, isolation_level=None)
    con.execute("PRAGMA synchronous = NORMAL")  # as bvtool's connections

    # runs: seed -> run id, per method; paired seeds = done for every method
    runs = {m: {} for m in METHODS}
    q = ("SELECT id, method, seed FROM runs WHERE status = 'done' AND "
         "((method = 'ce' AND temperature IS NULL) OR (method IN ('kd', 'wsl') AND temperature = ?))")
    for rid, method, seed in con.execute(q, (T,)):
        runs[method][seed] = rid
    seeds = sorted(set.intersection(*(set(runs[m]) for m in METHODS)))
    if len(seeds) < 2:
        sys.exit(f"decompose_numpy.py: fewer than 2 paired seeds at T={T:g} in {a.db}")
    B = len(seeds)
    ids = [runs[m][s] for m in METHODS for s in seeds]

    # epochs recorded (test split) by every run taking part
    marks = ",".join("?" * len(ids))
    epochs = [e for (e,) in con.execute(
        f"SELECT epoch FROM snapshots WHERE split = 'test' AND run_id IN ({marks}) "
        f"GROUP BY epoch HAVING count(*) = ? ORDER BY epoch", (*ids, len(ids)))]

    y = np.array([l for (l,) in con.execute(
        "SELECT label FROM samples WHERE split = 'test' ORDER BY sample_idx")], dtype=np.intp)

    def snapshot(run_id, epoch):
        n, k, blob = con.execute(
            "SELECT n, k, logits FROM snapshots WHERE run_id = ? AND epoch = ? AND split = 'test'",
            (run_id, epoch)).fetchone()
        return np.frombuffer(blob, "<f4").reshape(n, k)

    # the teacher's last test snapshot: p_t[y] and CE_t for the wsl weight
    row = con.execute(
        "SELECT r.id, max(s.epoch) FROM runs r JOIN snapshots s ON s.run_id = r.id "
        "WHERE r.method = 'teacher' AND r.status = 'done' AND s.split = 'test'").fetchone()
    N = len(y)
    idx = np.arange(N)
    if row[0] is not None:
        lt = log_softmax(snapshot(*row).astype(np.float64))[idx, y]
        teacher_p_true = np.exp(lt).tolist()
        ce_t = -lt
    else:
        teacher_p_true, ce_t = [None] * N, None
    t_read += time.perf_counter() - t0

    rows = []
    for epoch in epochs:
        ce = None
        for method in METHODS:
            t1 = time.perf_counter()
            z = np.stack([snapshot(runs[method][s], epoch) for s in seeds]).astype(np.float64)
            t2 = time.perf_counter()
            t_read += t2 - t1
            if not np.isfinite(z).all():
                sys.exit(f"decompose_numpy.py: non-finite logits: {method} T={T:g} epoch {epoch}")
            logq = log_softmax(z)                          # (B, N, K)
            l = logq.mean(axis=0)                          # (N, K)
            m = l.max(axis=1)
            logZ = m + np.log(np.exp(l - m[:, None]).sum(axis=1))
            l_y = l[idx, y]
            bias, variance, loss = -l_y + logZ, -logZ, -l_y
            logq_y = logq[:, idx, y]                       # (B, N)
            p_true = np.exp(logq_y).mean(axis=0)
            acc = (z.argmax(axis=2) == y).mean(axis=0)
            if method == "ce":
                ce = (bias, variance)
                reg = [None] * N
                wsl_w = [None] * N
            else:
                reg = ((bias > ce[0]) & (variance < ce[1])).astype(int).tolist()
                wsl_w = ((1.0 - np.exp(logq_y / (ce_t + 1e-7))).mean(axis=0).tolist()
                         if ce_t is not None else [None] * N)
            rows.extend(zip([T] * N, [epoch] * N, ["test"] * N, range(N), [method] * N,
                            bias.tolist(), variance.tolist(), loss.tolist(), reg, [B] * N,
                            p_true.tolist(), acc.tolist(), wsl_w, teacher_p_true))
            t_comp += time.perf_counter() - t2

    t1 = time.perf_counter()
    con.execute("BEGIN")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {a.table}(
        temperature REAL NOT NULL, epoch INTEGER NOT NULL, split TEXT NOT NULL,
        sample_idx INTEGER NOT NULL, method TEXT NOT NULL, bias REAL NOT NULL,
        variance REAL NOT NULL, loss REAL NOT NULL, regularization INTEGER,
        n_seeds INTEGER NOT NULL, p_true REAL, acc REAL, wsl_weight REAL, teacher_p_true REAL,
        PRIMARY KEY(temperature, epoch, split, method, sample_idx)) WITHOUT ROWID""")
    con.execute(f"DELETE FROM {a.table} WHERE temperature = ? AND split = 'test'", (T,))
    con.executemany(f"INSERT INTO {a.table} VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.execute("COMMIT")
    con.close()
    t_write = time.perf_counter() - t1

    print(f"decompose_numpy.py: T={T:g}, {len(epochs)} epochs, {B} seeds, {N} samples, "
          f"{len(rows)} rows; read {t_read:.3f} s, compute {t_comp:.3f} s, write {t_write:.3f} s, "
          f"total {time.perf_counter() - t0:.3f} s (after imports)", file=sys.stderr)


if __name__ == "__main__":
    main()
