#!/bin/sh
# Runs trained elsewhere, end to end (issue 12): examples/pytorch_kd.py trains a teacher and
# ce/kd/wsl students in PyTorch and records them with python/bvtool_record.py; `bvtool
# import` reads the directory, `bvtool decompose` decomposes it, and tests/ref_decompose.py
# (NumPy, reading the directory itself) must agree with its sample_stats rows to 1e-12.
# Also: the recorder's checks and its crash safety (a training killed or failing after 2
# epochs leaves a manifest import accepts with those 2), a second import of the same
# directory changes nothing, the example's losses against SPEC.md's formulas and gradients,
# and its resumption. Needs BVTOOL, BV_TMP, sqlite3, /usr/bin/python3 with NumPy and PyTorch
# (scripts/setup --test), and Fashion-MNIST.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
py=/usr/bin/python3
src=$(cd "$(dirname "$0")/.." && pwd)
if ! "$py" -c 'import numpy, torch' 2>/dev/null; then
	echo "cli_peer: $py cannot import numpy and torch: install them with scripts/setup --test" >&2
	exit 1
fi
t=$BV_TMP/cli_peer.$$
rm -rf "$t"
mkdir -p "$t"
cd "$t"
q() { sqlite3 "$1" "$2"; }
export PYTHONPATH="$src/python"

# py_check 'what' SCRIPT ARGS...: a Python check that exits 0, else its output is shown
py_check() {
	what=$1
	shift
	run "$py" "$@"
	if [ "$status" = 0 ]; then ok; else
		fail=$((fail + 1))
		echo "FAIL: $what (status $status)" >&2
		cat "$out" "$err" >&2
	fi
}

# --- the reference on its own: a hand-computed case, and its comparison failing when it must
py_check "ref_decompose.py --self-test" "$src/tests/ref_decompose.py" --self-test

# --- the recorder: what it writes, what it refuses (the exact messages), continuing a directory
cat >recorder_checks.py <<'PY'
import json, os, sys
import numpy as np
import torch
from bvtool_record import Recorder

bad = []
def check(what, ok):
    if not ok:
        bad.append(what)
        print("FAIL:", what)

def refuses(want, f):
    try:
        f()
    except ValueError as e:
        check(f"message {str(e)!r}, expected {want!r}", str(e) == want)
        return
    check(f"no ValueError, expected {want!r}", False)

def manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)

def files(d):
    return sorted(os.listdir(d))

y, y2 = np.array([0, 1, 2, 1]), np.array([2, 2, 0])
refuses("labels.test[1]: expected 0..2, got 3",
        lambda: Recorder("never", dataset="toy", classes=3, labels={"test": [0, 3]}))
refuses("labels.test: expected integers, got dtype float64",
        lambda: Recorder("never", dataset="toy", classes=3, labels={"test": [0.0, 1.0]}))
refuses("labels.valid: unknown split (expected test or train)",
        lambda: Recorder("never", dataset="toy", classes=3, labels={"test": y, "valid": y}))
refuses("classes: expected a whole number 1..100000, got 0",
        lambda: Recorder("never", dataset="toy", classes=0, labels={"test": y}))
refuses("dataset: expected a non-empty string, got ''",
        lambda: Recorder("never", dataset="", classes=3, labels={"test": y}))
check("a refused Recorder creates nothing", not os.path.exists("never"))

rec = Recorder("r", dataset="toy", classes=3, labels={"test": y, "train": y2})
m = manifest("r")
check("a new directory's manifest: no runs yet", m["runs"] == [] and m["classes"] == 3 and
      m["format"] == "bvtool-import" and m["version"] == 1 and m["dataset"] == "toy")
lt = np.load(os.path.join("r", m["labels"]["test"]))
check("labels written as int64", lt.dtype == np.dtype("<i8") and (lt == y).all())
t_test = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
rec.teacher(logits={"test": t_test, "train": torch.ones(3, 3)}, model="mlp:8", epoch=5,
            test_acc=torch.tensor(50.0))
m = manifest("r")
check("teacher keys", m["teacher"]["model"] == "mlp:8" and m["teacher"]["epoch"] == 5 and
      m["teacher"]["test_acc"] == 50.0 and list(m) == ["format", "version", "dataset",
      "classes", "labels", "teacher", "runs"])
tt = np.load(os.path.join("r", m["teacher"]["logits"]["test"]))
check("teacher logits as float32", tt.dtype == np.dtype("<f4") and
      (tt == t_test.astype(np.float32)).all())
refuses("teacher: already recorded by this Recorder",
        lambda: rec.teacher(logits={"test": t_test}))

run = rec.run("kd", seed=1, temperature=4, alpha=2.25, gamma=1, model="mlp:4",
              inbag=[1, 2, 0], lr=0.1, planned_epochs=3)
check("no run in the manifest before its first epoch", manifest("r")["runs"] == [])
z1 = torch.randn(4, 3, requires_grad=True)
run.record(1, test=z1, test_acc=20)
run.record(2, test=np.ones((4, 3)), test_acc=np.float32(30))
m = manifest("r")
r = m["runs"][0]
check("run keys", (r["method"], r["temperature"], r["alpha"], r["gamma"], r["seed"],
                   r["model"], r["lr"], r["planned_epochs"], r["epochs"], r["test_acc"]) ==
      ("kd", 4.0, 2.25, 1.0, 1, "mlp:4", 0.1, 3, [1, 2], [20.0, 30.0]))
check("a list of one file per epoch", len(r["logits"]["test"]) == 2 and "train" not in r["logits"])
z = np.load(os.path.join("r", r["logits"]["test"][0]))
check("a tensor with a gradient recorded", z.dtype == np.dtype("<f4") and
      (z == z1.detach().numpy()).all())
check("in-bag counts, one file per seed", r["inbag"] == "inbag_s1.npy" and
      (np.load(os.path.join("r", r["inbag"])) == [1, 2, 0]).all())
check("run.epochs", run.epochs == [1, 2])

before, listed = open("r/manifest.json").read(), files("r")
for want, f in [
    ("kd T=4 seed 1: epoch 2 after epoch 2 (epochs must increase)",
     lambda: run.record(2, test=np.zeros((4, 3)), test_acc=1)),
    ("kd T=4 seed 1: epoch 3: logits.test: expected shape (4, 3), got (4, 2)",
     lambda: run.record(3, test=np.zeros((4, 2)), test_acc=1)),
    ("kd T=4 seed 1: epoch 3: logits.test[1, 2]: expected a finite number, got nan",
     lambda: run.record(3, test=np.where(np.eye(4, 3)[::-1] > 0, np.nan, 0), test_acc=1)),
    ("kd T=4 seed 1: epoch 3: logits.test[0, 0]: expected a finite number, got 1e+39 "
     "(beyond float32's range)", lambda: run.record(3, test=np.full((4, 3), 1e39), test_acc=1)),
    ("kd T=4 seed 1: epoch 3: logits.test: expected numbers, got dtype <U1",
     lambda: run.record(3, test=np.full((4, 3), "a"), test_acc=1)),
    ("kd T=4 seed 1: epoch 3: logits of ['test', 'train'], the earlier epochs have ['test'] "
     "(the same splits every epoch)",
     lambda: run.record(3, test=np.zeros((4, 3)), train=np.zeros((3, 3)), test_acc=1)),
    ("kd T=4 seed 1: epoch 3: no logits (give test= and/or train=)",
     lambda: run.record(3, test_acc=1)),
    ("kd T=4 seed 1: epoch 3: test_acc missing; the earlier epochs have one (every epoch or "
     "none)", lambda: run.record(3, test=np.zeros((4, 3)))),
    ("kd T=4 seed 1: epoch 3: test_acc (percent): expected a number 0..100, got 101",
     lambda: run.record(3, test=np.zeros((4, 3)), test_acc=101)),
    ("kd T=4 seed 1: epoch: expected a whole number 0..1000000, got 2.5",
     lambda: run.record(2.5, test=np.zeros((4, 3)), test_acc=1)),
    ("kd T=4 seed 1: this Recorder already has that run",
     lambda: rec.run("kd", seed=1, temperature=4.0)),
    ("kd: seed: expected a whole number 1..2147483647, got 0",
     lambda: rec.run("kd", seed=0, temperature=4)),
    ("method: unknown method 'dkd' (expected ce, kd, wsl or kd-filter)",
     lambda: rec.run("dkd", seed=1, temperature=4)),
    ("ce seed 1: temperature: ce runs have none", lambda: rec.run("ce", seed=1, temperature=4)),
    ("wsl seed 1: temperature: required for wsl", lambda: rec.run("wsl", seed=1)),
    ("wsl seed 1: temperature: expected a number > 0, got -1",
     lambda: rec.run("wsl", seed=1, temperature=-1)),
    ("wsl T=1 seed 1: extra key 'epochs' is one the recorder writes",
     lambda: rec.run("wsl", seed=1, temperature=1, epochs=3)),
    ("wsl T=1 seed 1: extra key 'x': not a JSON value (Out of range float values are not JSON "
     "compliant)", lambda: rec.run("wsl", seed=1, temperature=1, x=float("nan"))),
    ("wsl T=1 seed 1: inbag: expected shape (3,), got shape (2,)",
     lambda: rec.run("wsl", seed=1, temperature=1, inbag=[1, 2])),
    ("wsl T=1 seed 1: inbag[0]: expected 0..3, got -1",
     lambda: rec.run("wsl", seed=1, temperature=1, inbag=[-1, 2, 2])),
    ("wsl T=1 seed 1: inbag[2]: expected 0..3, got 4",
     lambda: rec.run("wsl", seed=1, temperature=1, inbag=[0, 0, 4])),
    ("wsl T=1 seed 1: inbag differs from the in-bag counts of seed 1 ('inbag_s1.npy'): the "
     "runs of one seed share its bootstrap draw",
     lambda: rec.run("wsl", seed=1, temperature=1, inbag=[0, 3, 0])),
    ("wsl T=1 seed 1: model: expected a string of 1..127 bytes, got " + repr("m" * 128),
     lambda: rec.run("wsl", seed=1, temperature=1, model="m" * 128)),
    ("'r' is being recorded into by another Recorder (in this process or another); close "
     "that one first", lambda: Recorder("r", dataset="toy", classes=3, labels={"test": y})),
]:
    refuses(want, f)
check("refused input leaves the manifest and the files as they were",
      open("r/manifest.json").read() == before and files("r") == listed)

ce = rec.run("ce", seed=1, model="mlp:4", inbag=[1, 2, 0])
ce.record(1, test=np.zeros((4, 3)), train=np.zeros((3, 3)))
check("the seed's runs share its in-bag file", manifest("r")["runs"][1]["inbag"] == "inbag_s1.npy")
refuses("ce seed 1: epoch 2: test_acc given; the earlier epochs have none (every epoch or none)",
        lambda: ce.record(2, test=np.zeros((4, 3)), train=np.zeros((3, 3)), test_acc=1))
rec.close()
refuses("the Recorder of 'r' is closed", lambda: ce.record(2, test=np.zeros((4, 3))))

# continuing the directory
for want, f in [
    ("'r/manifest.json': dataset is 'toy', the Recorder was given 'toy2'",
     lambda: Recorder("r", dataset="toy2", classes=3, labels={"test": y, "train": y2})),
    ("'r/manifest.json': labels has splits ['test', 'train'], the Recorder was given ['test']",
     lambda: Recorder("r", dataset="toy", classes=3, labels={"test": y})),
    ("'r/manifest.json': labels.train ('labels_train.npy') differ from the labels the Recorder "
     "was given",
     lambda: Recorder("r", dataset="toy", classes=3, labels={"test": y, "train": [2, 2, 1]})),
]:
    refuses(want, f)
with Recorder("r", dataset="toy", classes=3, labels={"test": y, "train": y2}) as rec:
    refuses("kd T=4 seed 1: 'r/manifest.json' runs[0] has alpha 2.25, got 2.0",
            lambda: rec.run("kd", seed=1, temperature=4, alpha=2))
    refuses("kd T=4 seed 1: 'r/manifest.json' runs[0] has other in-bag counts than the ones "
            "given", lambda: rec.run("kd", seed=1, temperature=4, alpha=2.25, gamma=1,
                                     model="mlp:4", inbag=[3, 0, 0]))
    refuses("teacher: 'r/manifest.json' already has a teacher with other logits; record into "
            "a new directory", lambda: rec.teacher(logits={"test": t_test + 1}))
    rec.teacher(logits={"test": t_test, "train": np.ones((3, 3))})   # the same: accepted
    run = rec.run("kd", seed=1, temperature=4, alpha=2.25, gamma=1, model="mlp:4",
                  inbag=[1, 2, 0])
    check("a continued run knows its epochs", run.epochs == [1, 2])
    refuses("kd T=4 seed 1: epoch 2 after epoch 2 (epochs must increase)",
            lambda: run.record(2, test=np.zeros((4, 3)), test_acc=1))
    run.record(3, test=np.zeros((4, 3)), test_acc=40)
m = manifest("r")
check("the continued run has 3 epochs, its extras kept",
      m["runs"][0]["epochs"] == [1, 2, 3] and m["runs"][0]["lr"] == 0.1 and
      m["runs"][1]["epochs"] == [1] and len(m["runs"]) == 2)
check("no temporary file is left", not [f for f in files("r") if f.endswith(".tmp")])
print(f"recorder checks: {len(bad)} failed")
sys.exit(1 if bad else 0)
PY
py_check "the recorder's checks" recorder_checks.py

# --- the example's losses are SPEC.md's: values and gradients against the formulas in NumPy
cat >loss_checks.py <<'PY'
import importlib.util, sys
import numpy as np
import torch
spec = importlib.util.spec_from_file_location("pytorch_kd", sys.argv[1])
ex = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ex)

def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)

rng = np.random.default_rng(3)
B, K, T, alpha, gamma = 6, 5, 4.0, 2.25, 0.7
s0, t = rng.normal(size=(B, K)) * 3, rng.normal(size=(B, K)) * 3
y = rng.integers(0, K, B)
onehot = np.eye(K)[y]
ps, pt, psT, ptT = softmax(s0), softmax(t), softmax(s0 / T), softmax(t / T)
ce, ce_t = -np.log(ps[np.arange(B), y]), -np.log(pt[np.arange(B), y])
h = -(ptT * np.log(psT)).sum(1)
w = 1 - np.exp(-ce / (ce_t + 1e-7))
want = {  # value, gradient w.r.t. s (w a constant)
    "ce": (ce.mean(), (ps - onehot) / B),
    "kd": (gamma * ce.mean() + alpha * T * T * h.mean(),
           gamma * (ps - onehot) / B + alpha * T * (psT - ptT) / B),
    "wsl": (gamma * ce.mean() + alpha * T * T * (w * h).mean(),
            gamma * (ps - onehot) / B + alpha * T * w[:, None] * (psT - ptT) / B),
}
bad = 0
for method, (v, g) in want.items():
    s = torch.tensor(s0, requires_grad=True)
    loss = ex.loss_of(method, s, torch.tensor(y), torch.tensor(t), T, alpha, gamma)
    loss.backward()
    dv, dg = abs(loss.item() - v), float(np.abs(s.grad.numpy() - g).max())
    print(f"{method}: |loss - formula| {dv:.2g}, max |grad - formula| {dg:.2g}")
    bad += not (dv <= 1e-12 and dg <= 1e-12)
sys.exit(1 if bad else 0)
PY
py_check "the example's losses and gradients are SPEC.md's" loss_checks.py "$src/examples/pytorch_kd.py"

# --- train and record in PyTorch, import, decompose, and the reference
flags="--seeds 3 --methods ce,kd,wsl --temps 4 --epochs 3 --subset 6000 --threads 2 --record-train"
assert "docs/import.md shows the command run here" grep -q -F -x "examples/pytorch_kd.py --out peer $flags" "$src/docs/import.md"
# shellcheck disable=SC2086
run "$py" "$src/examples/pytorch_kd.py" --out peer $flags
assert "pytorch_kd.py exits 0 (status $status: $(tail -n 2 "$err"))" [ "$status" = 0 ]
assert "it prints the teacher's line" grep -q -E '^teacher mlp:256: test acc [0-9.]+% after epoch 5 ' "$out"
assert "and one line per run (9)" [ "$(grep -c -E '^(ce|kd T=4|wsl T=4) seed [123]: test acc [0-9.]+% after epoch 3 ' "$out")" = 9 ]
cat >pairing_checks.py <<'PY'
import json, sys
import numpy as np
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
n = len(np.load(f"{d}/{m['labels']['train']}"))
bad = 0
for r in m["runs"]:
    want = np.bincount(np.random.default_rng(r["seed"]).integers(0, n, size=n), minlength=n)
    bad += not (np.load(f"{d}/{r['inbag']}") == want).all()
    bad += r["epochs"] != [1, 2, 3] or sorted(r["logits"]) != ["test", "train"]
print(f"{len(m['runs'])} runs, {bad} with other in-bag counts or epochs")
sys.exit(1 if bad or len(m["runs"]) != 9 or n != 6000 else 0)
PY
py_check "every run's in-bag counts are default_rng(seed)'s draw, epochs 1..3, both splits" pairing_checks.py peer

assert "and the import and decompose lines" [ "$(grep -c -x -E 'build/bvtool (import --db peer.db peer|decompose --db peer.db --temp 4)' "$src/docs/import.md")" = 2 ]
run "$bv" import --db p.db peer
assert "import exits 0 (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "runs: the teacher and 9 students" [ "$(q p.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 10 ]
assert "snapshots: 9 x 3 epochs x 2 splits, and the teacher's 2" [ "$(q p.db "SELECT count(*) FROM snapshots")" = 56 ]
assert "samples: 10000 test, 6000 train" [ "$(q p.db "SELECT count(*) FROM samples WHERE split = 'test'") $(q p.db "SELECT count(*) FROM samples WHERE split = 'train'")" = "10000 6000" ]
assert "in-bag counts: 3 seeds x 6000" [ "$(q p.db "SELECT count(*) || ' ' || sum(count) FROM inbag")" = "18000 18000" ]
cat >blob_checks.py <<'PY'
import json, sqlite3, sys
import numpy as np
d, db = sys.argv[1:3]
m = json.load(open(f"{d}/manifest.json"))
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
bad = 0
for r in m["runs"]:
    for split, paths in r["logits"].items():
        for e, p in zip(r["epochs"], paths):
            row = con.execute(
                "SELECT s.n, s.k, s.logits FROM snapshots s JOIN runs u ON u.id = s.run_id "
                "WHERE u.method = ? AND u.seed = ? AND IFNULL(u.temperature, -1) = ? "
                "AND s.epoch = ? AND s.split = ?",
                (r["method"], r["seed"], r.get("temperature", -1), e, split)).fetchone()
            z = np.load(f"{d}/{p}")
            bad += row is None or (row[0], row[1]) != z.shape or row[2] != z.astype("<f4").tobytes()
    acc = con.execute("SELECT test_acc FROM runs WHERE method = ? AND seed = ? AND "
                      "IFNULL(temperature, -1) = ?",
                      (r["method"], r["seed"], r.get("temperature", -1))).fetchone()[0]
    bad += acc is None or abs(acc - r["test_acc"][-1] / 100) > 1e-12
y = np.load(f"{d}/{m['labels']['test']}")
got = [l for (l,) in con.execute("SELECT label FROM samples WHERE split = 'test' ORDER BY sample_idx")]
bad += got != y.tolist()
print(f"snapshots, labels and test_acc: {bad} differ from the files")
sys.exit(1 if bad else 0)
PY
py_check "every snapshot is its .npy byte for byte, labels and test_acc (a fraction) as recorded" blob_checks.py peer p.db

sum1=$(cksum <p.db)
run "$bv" import --db p.db peer
assert "importing the same directory again exits 0 (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "and changes nothing (cksum)" [ "$(cksum <p.db)" = "$sum1" ]

run "$bv" decompose --db p.db --temp 4
assert "decompose --temp 4 exits 0 (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
for e in 1 2 3; do
	py_check "ref_decompose.py agrees with sample_stats at epoch $e" "$src/tests/ref_decompose.py" peer --temp 4 --epoch "$e" --db p.db
	grep "^ref_decompose: " "$out" || true
done
py_check "ref_decompose.py agrees at the default (last common) epoch" "$src/tests/ref_decompose.py" peer --temp 4 --db p.db
assert "which is epoch 3" grep -q "^ref_decompose: T=4 epoch 3 split test: ce, kd, wsl over seeds 1,2,3, 10000 samples: " "$out"

# --- crash safety: killed while recording epoch 3 (after its .npy, before the manifest's
# rename), or failing at epoch 3: the manifest lists epochs 1 and 2, and import takes them
cat >crash.py <<'PY'
import os, signal, sys
import numpy as np
import bvtool_record
from bvtool_record import Recorder
d, how = sys.argv[1:3]
rng = np.random.default_rng(0)
y = rng.integers(0, 10, 50)
rec = Recorder(d, dataset="crash", classes=10, labels={"test": y})
runs = [rec.run("ce", seed=s, model="mlp:4") for s in (1, 2)]
for epoch in (1, 2):
    for run in runs:
        run.record(epoch, test=rng.normal(size=(50, 10)), test_acc=10.0 * epoch)
if how == "kill":
    real = os.replace
    def replace(a, b):
        if b.endswith("manifest.json"):
            os.kill(os.getpid(), signal.SIGKILL)
        real(a, b)
    bvtool_record.os.replace = replace
    runs[0].record(3, test=rng.normal(size=(50, 10)), test_acc=30.0)
else:
    z = rng.normal(size=(50, 10))
    z[7, 3] = np.nan                  # the training diverged
    runs[0].record(3, test=z, test_acc=30.0)
PY
for how in kill raise; do
	run "$py" crash.py "crash-$how" "$how"
	if [ "$how" = kill ]; then
		assert "the killed recorder died by SIGKILL (status $status)" [ "$status" = 137 ]
		assert "after writing epoch 3's logits" [ -f "crash-$how/ce_s1_e3_test.npy" ]
	else
		assert "the failing training exits 1 (status $status)" [ "$status" = 1 ]
		assert "with the recorder's message" grep -q "^ValueError: ce seed 1: epoch 3: logits.test\[7, 3\]: expected a finite number, got nan$" "$err"
	fi
	run "$bv" import --db "crash-$how.db" "crash-$how"
	assert "import accepts the directory left by '$how' (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
	assert "with epochs 1 and 2 of each run ($how)" [ "$(q "crash-$how.db" "SELECT group_concat(epoch) FROM (SELECT sn.epoch FROM snapshots sn JOIN runs r ON r.id = sn.run_id WHERE r.method = 'ce' ORDER BY r.seed, sn.epoch)")" = "1,2,1,2" ]
done
# the killed training resumed: reopening continues the run at epoch 3
cat >resume.py <<'PY'
import sys
import numpy as np
from bvtool_record import Recorder
rng = np.random.default_rng(0)
y = rng.integers(0, 10, 50)
with Recorder(sys.argv[1], dataset="crash", classes=10, labels={"test": y}) as rec:
    run = rec.run("ce", seed=1, model="mlp:4")
    assert run.epochs == [1, 2], run.epochs
    run.record(3, test=rng.normal(size=(50, 10)), test_acc=30.0)
PY
py_check "the killed directory is continued at epoch 3" resume.py crash-kill
run "$bv" import --db resumed.db crash-kill
assert "and imports (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "with 3 epochs of seed 1" [ "$(q resumed.db "SELECT count(*) FROM snapshots sn JOIN runs r ON r.id = sn.run_id WHERE r.seed = 1")" = 3 ]

# --- the example resumed: a run cut after epoch 2 is retrained and its epoch 3 recorded again,
# the same bytes; the others are skipped
cp peer/wsl_T4_s2_e3_test.npy e3.npy
cat >cut.py <<'PY'
import json, os, sys
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
for r in m["runs"]:
    if r["method"] == "wsl" and r["seed"] == 2:
        r["epochs"], r["test_acc"] = r["epochs"][:2], r["test_acc"][:2]
        r["logits"] = {s: p[:2] for s, p in r["logits"].items()}
        for p in ("wsl_T4_s2_e3_test.npy", "wsl_T4_s2_e3_train.npy"):
            os.unlink(f"{d}/{p}")
json.dump(m, open(f"{d}/manifest.json", "w"))
PY
"$py" cut.py peer
# shellcheck disable=SC2086
run "$py" "$src/examples/pytorch_kd.py" --out peer $flags
assert "the resumed example exits 0 (status $status: $(tail -n 1 "$err"))" [ "$status" = 0 ]
assert "it skips the 8 complete runs" [ "$(grep -c ': already recorded (epochs 1..3)$' "$out")" = 8 ]
assert "and records wsl seed 2's epoch 3 again, byte for byte" cmp -s e3.npy peer/wsl_T4_s2_e3_test.npy

cd /
rm -rf "$t"
finish
