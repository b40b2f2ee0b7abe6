#!/usr/bin/python3
"""An independent NumPy decomposition of an import-layout directory, held against the
sample_stats rows `bvtool decompose` wrote after `bvtool import` of that directory.

    tests/ref_decompose.py DIR --temp T [--epoch E] [--db FILE]
    tests/ref_decompose.py --self-test

It reads DIR's manifest.json and arrays itself (np.load; "f.npz:member" paths; a run's test
logits one (E, N, K) file or one (N, K) file per epoch), never through bvtool or its
recorder. At temperature T: the ce runs, and the kd, wsl (and kd-filter) runs at T; the
seeds paired as bvtool pairs them (a ce seed is used when every soft method present at T has
it too); the epoch E, by default the last one every run taking part recorded. Per method and
test sample, in float64 from the float32 logits (SPEC.md, Heskes 1998):
    log q_r = log_softmax(z_r),  l = mean_r log q_r,  log Z = logsumexp_k l
    bias = -(l[y] - log Z),  variance = -log Z,  loss = mean_r -log q_r[y]
and for kd, wsl, kd-filter: regularization = bias_m > bias_ce and variance_m < variance_ce.
Every sample must satisfy |loss - bias - variance| <= 1e-12.

With --db it reads the rows of sample_stats for (T, E, 'test') and requires one row per
method and sample, n_seeds the paired seeds, max |diff| of bias, variance and loss <= 1e-12,
and the same regularization flags (NULL for ce). It prints the largest differences and exits
1 on any failure (no rows at all is a failure). A flag whose deciding difference is below
1e-12 is reported as undecidable rather than as a mismatch (none in practice).

--self-test checks this script on a layout it writes itself: a hand-computed case (closed
forms, and a direct KL computation), every way of naming arrays, the pairing and epoch
choice, and the comparison failing on a perturbed, missing or wrong row.
"""
import argparse
import json
import math
import os
import sqlite3
import sys
import tempfile

import numpy as np

TOL = 1e-12
SOFT = ("kd", "wsl", "kd-filter")


class Fail(Exception):
    """A reason this script cannot decompose the layout (exit 1)."""


def load(d, path, mmap=False):
    """An array the manifest names, relative to d: an .npy file or 'f.npz:member'."""
    cut = path.rfind(".npz:")
    if cut < 0:
        return np.load(os.path.join(d, path), mmap_mode="r" if mmap else None,
                       allow_pickle=False)
    member = path[cut + 5:]
    with np.load(os.path.join(d, path[:cut + 4]), allow_pickle=False) as z:
        if member not in z.files and member.endswith(".npy"):
            member = member[:-4]
        return z[member]


def test_logits(d, run, epoch):
    """A run's (N, K) test logits after `epoch`, as float32 (what bvtool stores)."""
    paths = run["logits"]["test"]
    i = run["epochs"].index(epoch)
    z = load(d, paths, mmap=True)[i] if isinstance(paths, str) else load(d, paths[i])
    return np.asarray(z).astype(np.float32)


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def decompose(d, T, epoch=None):
    """The reference rows of layout d at temperature T: a dict (module docstring)."""
    with open(os.path.join(d, "manifest.json")) as f:
        m = json.load(f)
    y = np.asarray(load(d, m["labels"]["test"])).astype(np.int64)
    k = m["classes"]
    if y.ndim != 1 or y.min() < 0 or y.max() >= k:
        raise Fail(f"labels.test: expected (N,) labels 0..{k - 1}")
    runs = {}
    for r in m["runs"]:
        method = r["method"]
        if "test" not in r["logits"]:
            continue
        if method == "ce" or (method in SOFT and r.get("temperature") == T):
            runs.setdefault(method, {})[r["seed"]] = r
    if "ce" not in runs or len(runs) < 2:
        raise Fail(f"no ce runs, or no kd/wsl/kd-filter runs at T={T:g}")
    methods = ["ce"] + [s for s in SOFT if s in runs]
    seeds = sorted(s for s in runs["ce"] if all(s in runs[x] for x in methods))
    if len(seeds) < 2:
        raise Fail(f"fewer than 2 paired seeds at T={T:g}")
    common = set.intersection(*(set(runs[x][s]["epochs"]) for x in methods for s in seeds))
    if not common:
        raise Fail("the runs taking part have no epoch in common")
    if epoch is None:
        epoch = max(common)
    elif epoch not in common:
        raise Fail(f"epoch {epoch} is not recorded by every run (common: {sorted(common)})")
    n, idx = len(y), np.arange(len(y))
    out = {"T": T, "epoch": epoch, "seeds": seeds, "n": n, "methods": {}}
    for method in methods:
        z = np.stack([test_logits(d, runs[method][s], epoch) for s in seeds]).astype(np.float64)
        if z.shape[1:] != (n, k):
            raise Fail(f"{method}: test logits of shape {z.shape[1:]}, expected ({n}, {k})")
        logq = log_softmax(z)                                     # (B, N, K)
        l = logq.mean(axis=0)                                     # (N, K)
        mx = l.max(axis=1)
        log_z = mx + np.log(np.exp(l - mx[:, None]).sum(axis=1))  # log sum_k exp(l_k)
        row = {"bias": -(l[idx, y] - log_z), "variance": -log_z,
               "loss": (-logq[:, idx, y]).mean(axis=0)}
        if method != "ce":
            ce = out["methods"]["ce"]
            row["regularization"] = (row["bias"] > ce["bias"]) & (row["variance"] < ce["variance"])
            # how far each flag is from flipping: the smaller of its two margins
            row["margin"] = np.minimum(np.abs(row["bias"] - ce["bias"]),
                                       np.abs(row["variance"] - ce["variance"]))
        out["methods"][method] = row
    ident = max(float(np.abs(r["loss"] - r["bias"] - r["variance"]).max())
                for r in out["methods"].values())
    out["identity"] = ident
    if not ident <= TOL:
        raise Fail(f"the reference's own |loss - bias - variance| reaches {ident:.3g}")
    return out


def compare(db, ref):
    """Problems (a list of lines; empty: agreement) and a summary line of db against ref."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT method, sample_idx, bias, variance, loss, regularization, n_seeds "
            "FROM sample_stats WHERE temperature = ? AND epoch = ? AND split = 'test'",
            (ref["T"], ref["epoch"])).fetchall()
    finally:
        con.close()
    where = f"T={ref['T']:g} epoch {ref['epoch']} split test"
    if not rows:
        return [f"'{db}' has no sample_stats rows for {where}"], ""
    problems, n, b = [], ref["n"], len(ref["seeds"])
    by = {}
    for method, i, *vals in rows:
        by.setdefault(method, {})[i] = vals
    for method in sorted(set(by) - set(ref["methods"])):
        problems.append(f"bvtool has rows of method '{method}' the reference did not decompose")
    diff = {"bias": 0.0, "variance": 0.0, "loss": 0.0}
    flagged, undecidable = {}, 0
    for method, r in ref["methods"].items():
        got = by.get(method, {})
        if sorted(got) != list(range(n)):
            problems.append(f"{method}: {len(got)} rows for samples "
                            f"{min(got, default='-')}..{max(got, default='-')}, expected one "
                            f"for each of 0..{n - 1}")
            continue
        vals = [got[i] for i in range(n)]
        for j, key in enumerate(("bias", "variance", "loss")):
            col = np.array([v[j] for v in vals], dtype=np.float64)
            d = np.abs(col - r[key])
            worst = float(d.max()) if np.isfinite(d).all() else math.inf
            diff[key] = max(diff[key], worst)
        seeds = {v[4] for v in vals}
        if seeds != {b}:
            problems.append(f"{method}: n_seeds {sorted(seeds)}, expected {b}")
        flags = [v[3] for v in vals]
        if method == "ce":
            if any(f is not None for f in flags):
                problems.append("ce: regularization is not NULL on every row")
            continue
        if any(f not in (0, 1) for f in flags):
            problems.append(f"{method}: regularization not 0 or 1 on every row")
            continue
        got_f = np.array(flags, dtype=bool)
        wrong = got_f != r["regularization"]
        close = wrong & (r["margin"] < TOL)
        undecidable += int(close.sum())
        if (wrong & ~close).any():
            i = int(np.flatnonzero(wrong & ~close)[0])
            problems.append(f"{method}: {int((wrong & ~close).sum())} regularization flags "
                            f"differ, the first at sample {i} (bvtool {int(got_f[i])}, "
                            f"reference {int(r['regularization'][i])})")
        flagged[method] = int(r["regularization"].sum())
    for key, v in diff.items():
        if not v <= TOL:
            problems.append(f"max |diff| of {key} {v:.3g} > {TOL:g}")
    summary = (f"{where}: {', '.join(ref['methods'])} over seeds "
               f"{','.join(map(str, ref['seeds']))}, {n} samples: max |diff| bias "
               f"{diff['bias']:.3g}, variance {diff['variance']:.3g}, loss {diff['loss']:.3g}; "
               "regularization samples " +
               ", ".join(f"{m} {c}" for m, c in flagged.items()) +
               (f"; {undecidable} flags within {TOL:g} of a tie" if undecidable else ""))
    return problems, summary


# ---- the self-test -----------------------------------------------------------------------

def _write_layout(d):
    """A layout with every way of naming arrays; epoch 2 is the hand case of _self_test."""
    q = {  # per method and seed: the (N=2, K=3) probabilities at epoch 2
        ("ce", 1): [[1 / 2, 1 / 4, 1 / 4], [0.2, 0.3, 0.5]],
        ("ce", 2): [[1 / 4, 1 / 2, 1 / 4], [0.1, 0.2, 0.7]],
        ("kd", 1): [[0.35, 0.35, 0.3], [0.2, 0.3, 0.5]],      # bias up, variance 0: flagged
        ("kd", 2): [[0.35, 0.35, 0.3], [0.1, 0.2, 0.7]],      # sample 1 = ce's: a tie, not
        ("wsl", 1): [[1 / 2, 1 / 4, 1 / 4], [0.3, 0.3, 0.4]],
        ("wsl", 2): [[1 / 4, 1 / 2, 1 / 4], [0.3, 0.3, 0.4]],
    }
    rng = np.random.default_rng(7)
    z = {c: np.stack([rng.normal(size=(2, 3)), np.log(np.array(p)) + 3.0]).astype(np.float32)
         for c, p in q.items()}                               # (E=2, N, K); logits up to a shift
    np.savez(os.path.join(d, "labels.npz"), test=np.array([0, 2]))
    runs = []
    for s in (1, 2):
        for e in (1, 2):
            np.save(os.path.join(d, f"ce_{s}_{e}.npy"), z["ce", s][e - 1])
        runs.append({"method": "ce", "seed": s, "epochs": [1, 2],
                     "logits": {"test": [f"ce_{s}_1.npy", f"ce_{s}_2.npy"]}})
        np.save(os.path.join(d, f"kd_{s}.npy"), z["kd", s])   # one (E, N, K) file
        runs.append({"method": "kd", "temperature": 4.0, "seed": s, "epochs": [1, 2],
                     "logits": {"test": f"kd_{s}.npy"}})
        runs.append({"method": "wsl", "temperature": 4, "seed": s, "epochs": [1, 2],
                     "logits": {"test": [f"wsl.npz:s{s}_e1", f"wsl.npz:s{s}_e2.npy"]}})
    np.savez(os.path.join(d, "wsl.npz"), **{f"s{s}_e{e}": z["wsl", s][e - 1]
                                            for s in (1, 2) for e in (1, 2)})
    # to be left out: a ce seed without partners, kd at another temperature, an epoch 3
    # only some runs have
    np.save(os.path.join(d, "noise.npy"), rng.normal(size=(3, 2, 3)).astype(np.float32))
    runs.append({"method": "ce", "seed": 3, "epochs": [1, 2, 3], "logits": {"test": "noise.npy"}})
    runs.append({"method": "kd", "temperature": 2, "seed": 1, "epochs": [1, 2, 3],
                 "logits": {"test": "noise.npy"}})
    runs[0]["epochs"], runs[0]["logits"]["test"] = [1, 2, 3], runs[0]["logits"]["test"] + [
        "ce_1_1.npy"]
    m = {"format": "bvtool-import", "version": 1, "dataset": "hand", "classes": 3,
         "labels": {"test": "labels.npz:test"}, "runs": runs}
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(m, f)
    return z


def _write_db(path, ref, edit=None):
    """A sample_stats table holding ref's rows (then edit(con) applied)."""
    if os.path.exists(path):
        os.unlink(path)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE sample_stats(temperature REAL, epoch INTEGER, split TEXT, "
                "sample_idx INTEGER, method TEXT, bias REAL, variance REAL, loss REAL, "
                "regularization INTEGER, n_seeds INTEGER)")
    for method, r in ref["methods"].items():
        for i in range(ref["n"]):
            reg = None if method == "ce" else int(r["regularization"][i])
            con.execute("INSERT INTO sample_stats VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (ref["T"], ref["epoch"], "test", i, method, float(r["bias"][i]),
                         float(r["variance"][i]), float(r["loss"][i]), reg, len(ref["seeds"])))
    # rows of another selection, which the comparison must not take
    con.execute("INSERT INTO sample_stats VALUES (?, 1, 'test', 0, 'ce', 9, 9, 9, NULL, 2)",
                (ref["T"],))
    if edit:
        con.execute(edit)
    con.commit()
    con.close()


def _self_test():
    bad = []

    def check(what, ok):
        print(f"{'ok' if ok else 'FAIL'}: {what}")
        if not ok:
            bad.append(what)

    with tempfile.TemporaryDirectory() as d:
        z = _write_layout(d)
        ref = decompose(d, 4.0)
        check("the last common epoch (2) is chosen", ref["epoch"] == 2)
        check("seeds 1 and 2 are paired, ce seed 3 is not", ref["seeds"] == [1, 2])
        check("the methods ce, kd, wsl", list(ref["methods"]) == ["ce", "kd", "wsl"])
        ce, kd, wsl = (ref["methods"][m] for m in ("ce", "kd", "wsl"))
        # closed forms of sample 0 of ce: qbar ~ (sqrt(1/8), sqrt(1/8), 1/4), y = 0
        zsum = 1 / math.sqrt(2) + 1 / 4
        want = {"bias": math.log(2 * math.sqrt(2)) + math.log(zsum),
                "variance": -math.log(zsum), "loss": 1.5 * math.log(2)}
        err = max(abs(ce[k][0] - v) for k, v in want.items())
        check(f"ce sample 0 = the closed forms (max |diff| {err:.2g} <= 1e-6, float32 logits)",
              err <= 1e-6)
        # a direct computation from the same float32 logits: qbar, then the KLs
        y = np.array([0, 2])
        worst = 0.0
        for name, r in ref["methods"].items():
            zz = np.stack([z[name, s][1] for s in (1, 2)]).astype(np.float64)
            q = np.exp(zz) / np.exp(zz).sum(axis=2, keepdims=True)   # (B, N, K)
            g = np.exp(np.log(q).mean(axis=0))
            qbar = g / g.sum(axis=1, keepdims=True)
            kl = (qbar[None] * (np.log(qbar[None]) - np.log(q))).sum(axis=2).mean(axis=0)
            direct = {"bias": -np.log(qbar[[0, 1], y]), "variance": kl,
                      "loss": -np.log(q[:, [0, 1], y]).mean(axis=0)}
            for k, v in direct.items():
                worst = max(worst, float(np.abs(r[k] - v).max()))
        check(f"bias = KL(y || qbar), variance = mean_r KL(qbar || q_r), loss: the direct "
              f"computation (max |diff| {worst:.2g} <= 1e-12)", worst <= TOL)
        check(f"loss = bias + variance ({ref['identity']:.2g} <= 1e-12)", ref["identity"] <= TOL)
        check("kd flags sample 0 (bias up, variance down), not the tie of sample 1",
              kd["regularization"].tolist() == [True, False])
        check("wsl flags sample 1 only", wsl["regularization"].tolist() == [False, True])
        check("epoch 1 on request", decompose(d, 4.0, 1)["epoch"] == 1)
        try:
            decompose(d, 4.0, 3)
            check("epoch 3 (not recorded by every run) is refused", False)
        except Fail:
            check("epoch 3 (not recorded by every run) is refused", True)

        db = os.path.join(d, "s.db")
        _write_db(db, ref)
        problems, summary = compare(db, ref)
        check(f"the same rows agree: {summary}", problems == [])
        cases = [
            ("a bias off by 1e-9", "UPDATE sample_stats SET bias = bias + 1e-9 "
             "WHERE method = 'kd' AND sample_idx = 1 AND epoch = 2", "max |diff| of bias"),
            ("a variance off by 2e-12", "UPDATE sample_stats SET variance = variance - 2e-12 "
             "WHERE method = 'ce' AND sample_idx = 0 AND epoch = 2", "max |diff| of variance"),
            ("a loss off", "UPDATE sample_stats SET loss = loss * 1.01 WHERE method = 'wsl' "
             "AND epoch = 2", "max |diff| of loss"),
            ("a flipped flag", "UPDATE sample_stats SET regularization = 0 WHERE method = 'kd' "
             "AND sample_idx = 0", "regularization flags differ"),
            ("a ce row flagged", "UPDATE sample_stats SET regularization = 0 WHERE method = 'ce'",
             "ce: regularization is not NULL"),
            ("a missing row", "DELETE FROM sample_stats WHERE method = 'wsl' AND sample_idx = 1",
             "wsl: 1 rows"),
            ("another method", "INSERT INTO sample_stats VALUES (4, 2, 'test', 0, 'dkd', 0, 0, "
             "0, 0, 2)", "method 'dkd'"),
            ("wrong n_seeds", "UPDATE sample_stats SET n_seeds = 3 WHERE method = 'kd'",
             "n_seeds"),
            ("no rows", "DELETE FROM sample_stats WHERE epoch = 2", "no sample_stats rows"),
        ]
        for what, sql, want in cases:
            _write_db(db, ref, sql)
            problems, _ = compare(db, ref)
            check(f"{what} fails the comparison ({'; '.join(problems)})",
                  any(want in p for p in problems))
    print(f"ref_decompose self-test: {'FAIL' if bad else 'ok'}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", help="the layout directory (manifest.json)")
    ap.add_argument("--temp", type=float, help="the temperature T of kd and wsl")
    ap.add_argument("--epoch", type=int, help="the epoch (default: the last common one)")
    ap.add_argument("--db", help="a database to hold against the reference")
    ap.add_argument("--self-test", action="store_true", help="check this script, then exit")
    a = ap.parse_args()
    if a.self_test:
        return _self_test()
    if a.dir is None or a.temp is None:
        ap.error("DIR and --temp are required (or --self-test)")
    try:
        ref = decompose(a.dir, a.temp, a.epoch)
    except (Fail, OSError, KeyError, ValueError) as e:
        print(f"ref_decompose: '{a.dir}': {e}", file=sys.stderr)
        return 1
    if a.db is None:
        for method, r in ref["methods"].items():
            extra = (f", regularization samples {int(r['regularization'].sum())}"
                     if "regularization" in r else "")
            print(f"T={a.temp:g} epoch {ref['epoch']} {method}: mean bias "
                  f"{r['bias'].mean():.6f}, variance {r['variance'].mean():.6f}, loss "
                  f"{r['loss'].mean():.6f}{extra}")
        return 0
    try:
        problems, summary = compare(a.db, ref)
    except sqlite3.Error as e:
        print(f"ref_decompose: FAIL: '{a.db}': {e}", file=sys.stderr)
        return 1
    for p in problems:
        print(f"ref_decompose: FAIL: {p}", file=sys.stderr)
    if summary:
        print(f"ref_decompose: {summary}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
