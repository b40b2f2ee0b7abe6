#!/usr/bin/python3
"""Every recipe of docs/sql.md on a collected, decomposed database, through
Python's sqlite3 module and through the real sqlite3 shell, both with the
bvtool_sql extension loaded:

    sql_recipes.py EXTENSION DB DOCS_SQL_MD

- (1) decompose: at every (temperature, epoch, method) of sample_stats' test
  rows, bias, variance and loss equal bvtool decompose's to 1e-12, row for row,
  from each client;
- (2) regularization: the flags equal sample_stats.regularization exactly, and
  the count row equals their sum, from each client;
- (3) confusion, (4) teacher-wrong, (5) wsl-weight: against NumPy on the raw
  snapshot BLOBs (the snapshots table, not the extension);
- the shell's output equals Python's (the shell prints 15 significant digits).
Prints the largest differences; exits 1 on any failed check.
"""
import re
import sqlite3
import subprocess
import sys

import numpy as np

ext, db, doc = sys.argv[1:4]
ext_noso = ext[:-3] if ext.endswith(".so") else ext
fails = 0
checks = 0


def check(ok, what):
    global fails, checks
    checks += 1
    if not ok:
        fails += 1
        print("FAIL:", what)


def recipes(path):
    out, name, lines = {}, None, None
    for line in open(path):
        m = re.match(r"<!-- recipe: (\S+) -->", line)
        if m:
            name = m.group(1)
        elif line.startswith("```sql") and name:
            lines = []
        elif line.startswith("```") and lines is not None:
            out[name] = "".join(lines)
            name, lines = None, None
        elif lines is not None:
            lines.append(line)
    return out


R = recipes(doc)
check(set(R) == {"decompose", "regularization", "confusion", "teacher-wrong", "wsl-weight"},
      f"docs/sql.md's recipes: {sorted(R)}")

con = sqlite3.connect(db)
con.enable_load_extension(True)
con.load_extension(ext_noso)
con.enable_load_extension(False)


def shell(sql, params):
    """The recipe through the sqlite3 shell, rows as lists of strings."""
    cmd = ["sqlite3", "-bail", "-cmd", f".load {ext_noso}"]
    for k, v in params.items():
        # .parameter set takes an SQL literal: quote text
        lit = f"'{v}'" if isinstance(v, str) else repr(v)
        cmd += ["-cmd", f".parameter set :{k} {lit}"]
    cmd += [db]
    r = subprocess.run(cmd, input=sql, capture_output=True, text=True)
    if r.returncode != 0:
        check(False, f"the shell failed: {r.stderr.strip()}")
        return []
    return [line.split("|") for line in r.stdout.splitlines()]


def same_as_shell(rows, srows, what, tol=1e-12):
    """Python's rows equal the shell's (numbers to tol relative, 15 digits)."""
    ok = len(rows) == len(srows)
    worst = 0.0
    for a, b in zip(rows, srows):
        ok = ok and len(a) == len(b)
        for x, y in zip(a, b):
            if isinstance(x, float):
                d = abs(x - float(y)) / max(1.0, abs(x))
                worst = max(worst, d)
                ok = ok and d <= tol
            else:
                ok = ok and str("" if x is None else x) == y
    check(ok, f"{what}: the shell's rows differ from Python's (worst {worst:.3g})")
    return worst


# --- (1) and (2) against sample_stats
keys = con.execute(
    "SELECT DISTINCT temperature, epoch, method FROM sample_stats WHERE split = 'test' "
    "ORDER BY 1, 2, 3").fetchall()
check(len(keys) >= 3, f"sample_stats has {len(keys)} (temperature, epoch, method) keys")
worst = {"bias": 0.0, "variance": 0.0, "loss": 0.0}
worst_shell = {"bias": 0.0, "variance": 0.0, "loss": 0.0}
n_rows = n_flags = 0
for T, epoch, method in keys:
    params = {"method": method, "temp": T, "epoch": epoch}
    want = con.execute(
        "SELECT sample_idx, bias, variance, loss FROM sample_stats WHERE split = 'test' "
        "AND temperature = ? AND epoch = ? AND method = ? ORDER BY sample_idx",
        (T, epoch, method)).fetchall()
    # the same recipe through Python's sqlite3 and through the sqlite3 shell,
    # each held to sample_stats itself (the shell prints 15 significant digits)
    for client, rows, w in (("python", con.execute(R["decompose"], params).fetchall(), worst),
                            ("shell", shell(R["decompose"], params), worst_shell)):
        check(len(rows) == len(want) and len(rows) > 0,
              f"decompose ({client}) T={T} epoch {epoch} {method}: {len(rows)} rows, "
              f"sample_stats {len(want)}")
        for g, ref in zip(rows, want):
            check(int(g[0]) == ref[0], f"({client}) sample order {g[0]} vs {ref[0]}")
            for j, name in enumerate(("bias", "variance", "loss"), 1):
                w[name] = max(w[name], abs(float(g[j]) - ref[j]))
    n_rows += len(want)
    if method != "ce":
        want_f = con.execute(
            "SELECT sample_idx, regularization FROM sample_stats WHERE split = 'test' "
            "AND temperature = ? AND epoch = ? AND method = ? ORDER BY sample_idx",
            (T, epoch, method)).fetchall()
        count = ("count", sum(f[1] for f in want_f))
        flags = con.execute(R["regularization"], params).fetchall()
        check(flags[:-1] == want_f,
              f"regularization (python) T={T} epoch {epoch} {method}: the flags differ from sample_stats")
        check(flags[-1] == count, f"regularization count (python) {flags[-1]} vs {count}")
        sflags = shell(R["regularization"], params)
        check([(int(a), int(b)) for a, b in sflags[:-1]] == want_f,
              f"regularization (shell) T={T} epoch {epoch} {method}: the flags differ from sample_stats")
        check(sflags[-1:] == [["count", str(count[1])]], f"regularization count (shell) {sflags[-1:]} vs {count}")
        n_flags += len(want_f)
for client, w in (("python", worst), ("shell", worst_shell)):
    for name, d in w.items():
        check(d <= 1e-12, f"decompose recipe ({client}): {name} differs from sample_stats by {d:.3g} (> 1e-12)")
print(f"decompose recipe: {n_rows} rows over {len(keys)} keys, max |diff| from sample_stats: "
      f"Python bias {worst['bias']:.3g} variance {worst['variance']:.3g} loss {worst['loss']:.3g}; "
      f"shell bias {worst_shell['bias']:.3g} variance {worst_shell['variance']:.3g} "
      f"loss {worst_shell['loss']:.3g}; {n_flags} regularization flags identical, both clients")

# --- NumPy's view of the raw snapshots
labels = np.array([r[0] for r in con.execute(
    "SELECT label FROM samples WHERE split = 'test' ORDER BY sample_idx")])


def snapshot(run, epoch):
    n, k, blob = con.execute(
        "SELECT n, k, logits FROM snapshots WHERE run_id = ? AND epoch = ? AND split = 'test'",
        (run, epoch)).fetchone()
    return np.frombuffer(blob, "<f4").reshape(n, k).astype(np.float64)


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


runs = con.execute("SELECT id, method, temperature, status FROM runs").fetchall()
teacher = [r[0] for r in runs if r[1] == "teacher"][0]
t_epoch = con.execute("SELECT max(epoch) FROM snapshots WHERE run_id = ? AND split = 'test'",
                      (teacher,)).fetchone()[0]
zt = snapshot(teacher, t_epoch)
last = keys[-1][1]
T = keys[-1][0]

# (3) the confusion matrix of one student
student = [r[0] for r in runs if r[1] == "kd" and r[3] == "done"][0]
zs = snapshot(student, last)
pred = zs.argmax(axis=1)
want = {}
for y, p in zip(labels, pred):
    want[(int(y), int(p))] = want.get((int(y), int(p)), 0) + 1
params = {"run": student, "epoch": last}
got = con.execute(R["confusion"], params).fetchall()
check({(a, b): c for a, b, c in got} == want and len(got) == len(want),
      "confusion: differs from NumPy's")
check(sum(c for _, _, c in got) == len(labels), "confusion: counts do not sum to the samples")
same_as_shell(got, shell(R["confusion"], params), "confusion")
print(f"confusion recipe: {len(got)} cells, {sum(c for a, b, c in got if a == b)} on the diagonal")

# (4) the teacher wrong, every student right
students = [r[0] for r in runs if r[1] != "teacher" and r[3] == "done"]
right = np.ones(len(labels), bool)
for s in students:
    right &= snapshot(s, last).argmax(axis=1) == labels
t_pred = zt.argmax(axis=1)
want_idx = np.nonzero((t_pred != labels) & right)[0]
params = {"epoch": last}
got = con.execute(R["teacher-wrong"], params).fetchall()
check([g[0] for g in got] == want_idx.tolist(), "teacher-wrong: the samples differ from NumPy's")
tp = np.exp(log_softmax(zt))[np.arange(len(labels)), t_pred]
d4 = max([abs(g[3] - tp[g[0]]) for g in got] + [0.0])
check(d4 <= 1e-12 and all(g[4] == len(students) and g[2] == t_pred[g[0]] for g in got),
      f"teacher-wrong: teacher_p differs by {d4:.3g} or the columns are wrong")
same_as_shell(got, shell(R["teacher-wrong"], params), "teacher-wrong")
print(f"teacher-wrong recipe: {len(got)} samples (NumPy {len(want_idx)}) over {len(students)} students")

# (5) the mean WSL weight per class, of the wsl students. CE = lse(z) - z_y in
# the order math/ computes it (bv_math_ce): the weight divides by CE_t + 1e-7,
# so a teacher's CE near 1e-6 turns a rounding of 1e-16 into one of 1e-10
def ce(z):
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return lse - z[np.arange(len(labels)), labels]


ce_t = ce(zt)
wsum = np.zeros(int(labels.max()) + 1)
wn = np.zeros_like(wsum)
for r in runs:
    if r[1] == "wsl" and r[2] == T and r[3] == "done":
        ce_s = ce(snapshot(r[0], last))
        w = 1 - np.exp(-ce_s / (ce_t + 1e-7))
        np.add.at(wsum, labels, w)
        np.add.at(wn, labels, 1)
params = {"method": "wsl", "temp": T, "epoch": last}
got = con.execute(R["wsl-weight"], params).fetchall()
d5 = max(abs(g[1] - wsum[g[0]] / wn[g[0]]) for g in got)
check(len(got) == int((wn > 0).sum()) and all(g[2] == wn[g[0]] for g in got) and d5 <= 1e-12,
      f"wsl-weight: differs from NumPy's by {d5:.3g}")
same_as_shell(got, shell(R["wsl-weight"], params), "wsl-weight")
print(f"wsl-weight recipe: {len(got)} classes, max |diff| vs NumPy {d5:.3g}")

print(f"sql_recipes: {checks} checks, {fails} failed")
sys.exit(1 if fails else 0)
