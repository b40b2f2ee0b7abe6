"""bvtool_record: record a training's logits in bvtool's import layout (docs/import.md).

A training script written in PyTorch (or anything that yields NumPy arrays) records the
logits of its teacher and of every student, epoch by epoch, into a directory that
`bvtool import --db runs.db DIR` reads: a manifest.json beside one .npy file per array.

    from bvtool_record import Recorder
    rec = Recorder("out", dataset="fashion-mnist", classes=10,
                   labels={"test": y_test, "train": y_train})
    rec.teacher(logits={"test": t_test, "train": t_train}, model="mlp:256",
                epoch=None, test_acc=None)
    run = rec.run("kd", seed=1, temperature=4, alpha=2.25, gamma=1, model="mlp:64",
                  inbag=counts)          # counts: (N_train,) in-bag counts, or None
    for epoch in range(1, epochs + 1):
        ...
        run.record(epoch, test=logits, train=None, test_acc=acc_percent)
    rec.close()                          # or: with Recorder(...) as rec:

Recorder(out_dir, dataset, classes, labels)
    Creates out_dir if needed and writes the labels (int64 .npy, values 0..classes-1;
    "test" required, "train" optional) and a manifest with no runs yet. If out_dir already
    holds a manifest, it is continued: dataset, classes and labels must equal the stored
    ones, and runs already there can be recorded further (a resumed training). One
    Recorder holds a directory at a time (a lock on it; close() releases it).
rec.teacher(logits, model=None, epoch=None, test_acc=None)
    The teacher's (N, K) logits per split, written once; test_acc one number, percent.
    On a continued directory with a teacher, the logits must equal the stored ones.
rec.run(method, seed, temperature=None, alpha=None, gamma=None, model=None, inbag=None,
        **extra_keys) -> Run
    One student: method ce, kd, wsl or kd-filter; temperature for all but ce; seed the
    replica number 1..2147483647; model at most 127 bytes; inbag the (N_train,) counts
    0..N_train of the seed's bootstrap draw (one file per seed: every run of a seed must
    give the same). Extra keys land in the manifest's run as they are (JSON values; bvtool
    keeps unknown keys for the database and reads "planned_epochs", "seconds" and
    "metrics" as docs/import.md says). A (method, temperature, seed) already in the
    manifest is continued, its settings unchanged; the same cell twice in one Recorder is
    refused.
run.record(epoch, test=None, train=None, test_acc=None)
run.epochs
    The (N, K) logits of the splits given (the same splits every epoch, labels for each),
    after the whole-numbered epoch (increasing); test_acc percent 0..100, every epoch or
    none. run.epochs lists the epochs recorded so far, a continued run's included.

Arrays are NumPy arrays or anything np.asarray takes; an object with .detach(), .cpu() and
.numpy() (a torch tensor) is converted with those, so torch is never imported here. Bad
input raises ValueError before anything is written.

What a crash leaves: each record() writes its .npy files (a temporary name, fsync,
os.replace), then rewrites manifest.json the same way, so manifest.json is always complete
and lists exactly the epochs whose files are complete; a killed training leaves at most
unlisted files (which bvtool import ignores) and can be resumed by reopening the directory.
"""
import fcntl
import json
import math
import numbers
import os

import numpy as np

FORMAT = "bvtool-import"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("test", "train")
METHODS = ("ce", "kd", "wsl", "kd-filter")
MAX_CLASSES = 100000   # interop/manifest.h
MAX_EPOCH = 1000000    # db/db.h
MAX_SEED = 2**31 - 1
# the run keys the recorder writes itself: extra keys may not be one of these
RUN_KEYS = ("method", "temperature", "alpha", "gamma", "seed", "model", "epochs", "logits",
            "inbag", "test_acc")

__all__ = ["Recorder", "Run"]
_MISSING = object()


# ---- checking inputs ---------------------------------------------------------------------

def _array(x):
    """x as a NumPy array; a torch tensor (or the like) through .detach().cpu().numpy()."""
    if all(hasattr(x, a) for a in ("detach", "cpu", "numpy")):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _scalar(v):
    """A 0-d array or tensor as its Python number; anything else as it is."""
    if all(hasattr(v, a) for a in ("detach", "cpu", "numpy")):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    return v


def _whole(v, what, lo, hi):
    """v as an int lo..hi: Python or NumPy integers, or floats with a whole value."""
    v = _scalar(v)
    whole = (isinstance(v, numbers.Integral) or
             isinstance(v, numbers.Real) and math.isfinite(v) and float(v).is_integer())
    if isinstance(v, (bool, np.bool_)) or not whole or not lo <= int(v) <= hi:
        raise ValueError(f"{what}: expected a whole number {lo}..{hi}, got {v!r}")
    return int(v)


def _real(v, what, lo=-math.inf, hi=math.inf, positive=False):
    """v as a finite float in [lo, hi], > 0 when positive."""
    v = _scalar(v)
    ok = (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and
          math.isfinite(v) and lo <= v <= hi and (v > 0 or not positive))
    if not ok:
        want = ("a number > 0" if positive else f"a number {lo:g}..{hi:g}" if lo > -math.inf
                else "a finite number")
        raise ValueError(f"{what}: expected {want}, got {v!r}")
    return float(v)


def _integers(x, what, shape, k=None):
    """An integer array of exactly `shape` (values 0..k-1 when k is given) as int64."""
    a = _array(x)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{what}: expected integers, got dtype {a.dtype}")
    if a.ndim != 1 or (shape is not None and a.shape != shape):
        want = f"shape {shape}" if shape is not None else "a 1-d array"
        raise ValueError(f"{what}: expected {want}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what}: is empty")
    lo, hi = a.min(), a.max()
    if lo < 0 or (k is not None and hi >= k):
        bad = int(np.flatnonzero((a < 0) | ((a >= k) if k is not None else False))[0])
        want = f"0..{k - 1}" if k is not None else ">= 0"
        raise ValueError(f"{what}[{bad}]: expected {want}, got {a[bad]}")
    return np.ascontiguousarray(a, dtype="<i8")


def _logits(x, what, n, k):
    """A finite (n, k) array of numbers as little-endian float32."""
    a = _array(x)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{what}: expected numbers, got dtype {a.dtype}")
    if a.shape != (n, k):
        raise ValueError(f"{what}: expected shape ({n}, {k}), got {a.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.ascontiguousarray(a, dtype="<f4")
    bad = ~np.isfinite(f)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        why = " (beyond float32's range)" if np.isfinite(a[i, j]) else ""
        raise ValueError(f"{what}[{i}, {j}]: expected a finite number, got {a[i, j]}{why}")
    return f


def _tname(t):
    """A temperature for file names: 4 -> '4', 0.5 -> '0.5'; distinct values stay distinct."""
    s = f"{t:g}"
    return s if float(s) == t else repr(t)


def _cell(method, t, seed):
    return f"{method} seed {seed}" if t is None else f"{method} T={_tname(t)} seed {seed}"


# ---- files -------------------------------------------------------------------------------

def _replace(path, write):
    """Write `path` atomically: write(f) into a temporary beside it, fsync, os.replace."""
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load(d, path):
    """An array the manifest names: a path relative to d (or absolute), or 'f.npz:member'."""
    cut = path.rfind(".npz:")
    file = os.path.join(d, path[:cut + 4] if cut >= 0 else path)
    if cut < 0:
        return np.load(file, allow_pickle=False)
    member = path[cut + 5:]
    with np.load(file, allow_pickle=False) as z:
        if member not in z.files and member.endswith(".npy"):
            member = member[:-4]
        return z[member]


# ---- the recorder ------------------------------------------------------------------------

class Recorder:
    """The layout directory being written (module docstring)."""

    def __init__(self, out_dir, dataset, classes, labels):
        if not isinstance(dataset, str) or not dataset:
            raise ValueError(f"dataset: expected a non-empty string, got {dataset!r}")
        self.classes = _whole(classes, "classes", 1, MAX_CLASSES)
        if not isinstance(labels, dict) or "test" not in labels:
            raise ValueError("labels: expected a dict with a 'test' array (and optionally 'train')")
        for s in labels:
            if s not in SPLITS:
                raise ValueError(f"labels.{s}: unknown split (expected test or train)")
        self.labels = {s: _integers(labels[s], f"labels.{s}", None, self.classes)
                       for s in SPLITS if s in labels}
        self.n = {s: len(y) for s, y in self.labels.items()}
        self.dir = str(out_dir)
        self.path = os.path.join(self.dir, MANIFEST)
        self._cells = set()      # (method, temperature, seed) given to run() by this Recorder
        self._teacher_done = False
        self._inbags = {}        # seed -> (file, counts) of its bootstrap draw
        os.makedirs(self.dir, exist_ok=True)
        self._lock = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            # two writers would each rewrite the manifest from their own copy and lose runs
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise ValueError(f"'{self.dir}' is being recorded into by another Recorder "
                             "(in this process or another); close that one first") from None
        try:
            if os.path.exists(self.path):
                self._m = self._reopen(dataset)
            else:
                files = {}
                for s, y in self.labels.items():
                    files[s] = f"labels_{s}.npy"
                    _replace(os.path.join(self.dir, files[s]), lambda f, y=y: np.save(f, y))
                self._write({"format": FORMAT, "version": VERSION, "dataset": dataset,
                             "classes": self.classes, "labels": files, "runs": []})
        except BaseException:
            self.close()
            raise

    def _reopen(self, dataset):
        """The existing manifest, checked against what this Recorder was given."""
        with open(self.path, "rb") as f:
            try:
                m = json.load(f)
            except ValueError as e:
                raise ValueError(f"'{self.path}': not JSON: {e}") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise ValueError(f"'{self.path}': not a bvtool-import manifest (format)")
        if m.get("version") != VERSION:
            raise ValueError(f"'{self.path}': version {m.get('version')!r}, this recorder "
                             f"writes {VERSION}")
        for key, have, given in (("dataset", m.get("dataset"), dataset),
                                 ("classes", m.get("classes"), self.classes)):
            if have != given:
                raise ValueError(f"'{self.path}': {key} is {have!r}, the Recorder was given "
                                 f"{given!r}")
        stored = m.get("labels") or {}
        if sorted(stored) != sorted(self.labels):
            raise ValueError(f"'{self.path}': labels has splits {sorted(stored)}, the Recorder "
                             f"was given {sorted(self.labels)}")
        for s, y in self.labels.items():
            if not np.array_equal(_load(self.dir, stored[s]), y):
                raise ValueError(f"'{self.path}': labels.{s} ('{stored[s]}') differ from the "
                                 "labels the Recorder was given")
        if not isinstance(m.get("runs"), list):
            raise ValueError(f"'{self.path}': runs: expected a list")
        return m

    def _write(self, m):
        """manifest.json := m, atomically; then the directory entry made durable."""
        text = json.dumps(m, indent=2, allow_nan=False).encode() + b"\n"
        _replace(self.path, lambda f: f.write(text))
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._m = m

    def _save(self, name, a):
        _replace(os.path.join(self.dir, name), lambda f: np.save(f, a, allow_pickle=False))
        return name

    def _open(self):
        if self._lock is None:
            raise ValueError(f"the Recorder of '{self.dir}' is closed")

    def teacher(self, logits, model=None, epoch=None, test_acc=None):
        """Record the teacher's (N, K) logits per split (once)."""
        self._open()
        if self._teacher_done:
            raise ValueError("teacher: already recorded by this Recorder")
        arrays = self._splits(logits, "teacher.logits")
        entry = {}
        if model is not None:
            entry["model"] = _model(model, "teacher.model")
        if epoch is not None:
            entry["epoch"] = _whole(epoch, "teacher.epoch", 0, MAX_EPOCH)
        entry["logits"] = {s: f"teacher_{s}.npy" for s in arrays}
        if test_acc is not None:
            entry["test_acc"] = _real(test_acc, "teacher.test_acc", 0, 100)
        have = self._m.get("teacher")
        if have is not None:
            # a resumed training: its students were distilled from the stored teacher
            same = (sorted(have.get("logits", {})) == sorted(arrays) and
                    all(np.array_equal(_load(self.dir, have["logits"][s]), a)
                        for s, a in arrays.items()))
            if not same:
                raise ValueError(f"teacher: '{self.path}' already has a teacher with other "
                                 "logits; record into a new directory")
            self._teacher_done = True
            return
        for s, a in arrays.items():
            self._save(entry["logits"][s], a)
        # the teacher before the runs, as docs/import.md lists the keys
        m = {k: v for k, v in self._m.items() if k != "runs"}
        self._write({**m, "teacher": entry, "runs": self._m["runs"]})
        self._teacher_done = True

    def _splits(self, logits, what):
        if not isinstance(logits, dict) or not logits:
            raise ValueError(f"{what}: expected a dict of split -> (N, K) logits")
        out = {}
        for s, x in logits.items():
            if s not in SPLITS:
                raise ValueError(f"{what}.{s}: unknown split (expected test or train)")
            if s not in self.labels:
                raise ValueError(f"{what}.{s}: the Recorder has no labels for split '{s}'")
            out[s] = _logits(x, f"{what}.{s}", self.n[s], self.classes)
        return out

    def run(self, method, seed, temperature=None, alpha=None, gamma=None, model=None,
            inbag=None, **extra_keys):
        """A student run to record epoch by epoch (a Run)."""
        self._open()
        if method not in METHODS:
            raise ValueError(f"method: unknown method {method!r} (expected ce, kd, wsl or "
                             "kd-filter)")
        seed = _whole(seed, f"{method}: seed", 1, MAX_SEED)
        if method == "ce":
            if temperature is not None:
                raise ValueError(f"ce seed {seed}: temperature: ce runs have none")
            t = None
        else:
            if temperature is None:
                raise ValueError(f"{method} seed {seed}: temperature: required for {method}")
            t = _real(temperature, f"{method} seed {seed}: temperature", positive=True)
        what = _cell(method, t, seed)
        entry = {"method": method}
        if t is not None:
            entry["temperature"] = t
        for key, v in (("alpha", alpha), ("gamma", gamma)):
            if v is not None:
                entry[key] = _real(v, f"{what}: {key}")
        entry["seed"] = seed
        if model is not None:
            entry["model"] = _model(model, f"{what}: model")
        for key, v in extra_keys.items():
            if key in RUN_KEYS:
                raise ValueError(f"{what}: extra key '{key}' is one the recorder writes")
            try:
                json.dumps(v, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{what}: extra key '{key}': not a JSON value ({e})") from None
            entry[key] = v
        if inbag is not None:
            if "train" not in self.labels:
                raise ValueError(f"{what}: inbag needs the Recorder's labels of the train split")
            n = self.n["train"]
            inbag = _integers(inbag, f"{what}: inbag", (n,), n + 1)
        key = (method, t, seed)
        if key in self._cells:
            raise ValueError(f"{what}: this Recorder already has that run")
        stem = method + (f"_T{_tname(t)}" if t is not None else "") + f"_s{seed}"
        run = Run(self, what, stem, entry, inbag)
        for i, r in enumerate(self._m["runs"]):
            if (r.get("method"), r.get("temperature"), r.get("seed")) == key:
                run._continue(i, r)
                if inbag is not None:
                    self._inbags.setdefault(seed, (r["inbag"], inbag))
                break
        else:
            if inbag is not None:
                entry["inbag"] = self._inbag_file(seed, inbag, what)
        self._cells.add(key)
        return run

    def _inbag_file(self, seed, counts, what):
        """The file of seed's in-bag counts: written once, shared by the seed's runs."""
        known = self._inbags.get(seed)
        if known is None:
            path = next((r["inbag"] for r in self._m["runs"]
                         if r.get("seed") == seed and "inbag" in r), None)
            if path is not None:
                known = (path, _load(self.dir, path))
        if known is None:
            known = (self._save(f"inbag_s{seed}.npy", counts), counts)
        elif not np.array_equal(known[1], counts):
            raise ValueError(f"{what}: inbag differs from the in-bag counts of seed {seed} "
                             f"('{known[0]}'): the runs of one seed share its bootstrap draw")
        self._inbags[seed] = known
        return known[0]

    def close(self):
        """Release the directory (idempotent); the manifest on disk is already complete."""
        if getattr(self, "_lock", None) is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def _model(v, what):
    """A model spec as the database holds it (runs.model: at most 127 bytes)."""
    if not isinstance(v, str) or not v or len(v.encode()) > 127:
        raise ValueError(f"{what}: expected a string of 1..127 bytes, got {v!r}")
    return v


class Run:
    """One student's recording; made by Recorder.run()."""

    def __init__(self, rec, what, stem, entry, inbag):
        self._rec, self._what, self._stem = rec, what, stem
        self._entry = entry       # the manifest's run, without epochs/logits until recorded
        self._inbag = inbag
        self._index = None        # its place in the manifest's runs once there
        self._splits = None       # the splits every epoch records, fixed by the first
        self._acc = None          # whether every epoch has a test_acc, fixed by the first

    @property
    def epochs(self):
        """The epochs recorded so far (a continued run's included), ascending."""
        return list(self._entry.get("epochs", []))

    def _continue(self, i, have):
        """Take over runs[i] of an existing manifest, whose settings must be these."""
        where = f"{self._what}: '{self._rec.path}' runs[{i}]"
        for key, v in self._entry.items():
            if have.get(key, _MISSING) != v:
                raise ValueError(f"{where} has {key} {have.get(key)!r}, got {v!r}")
        if ("inbag" in have) != (self._inbag is not None) or (
                self._inbag is not None and
                not np.array_equal(_load(self._rec.dir, have["inbag"]), self._inbag)):
            raise ValueError(f"{where} has other in-bag counts than the ones given")
        logits = have.get("logits", {})
        if not all(isinstance(p, list) for p in logits.values()):
            raise ValueError(f"{where} keeps its logits in one (E, N, K) file per split; only "
                             "per-epoch lists can be continued")
        self._entry = dict(have)
        self._index = i
        self._splits = sorted(logits)
        self._acc = "test_acc" in have

    def record(self, epoch, test=None, train=None, test_acc=None):
        """Record the logits after `epoch` and rewrite the manifest to list it."""
        rec, what = self._rec, self._what
        rec._open()
        e = _whole(epoch, f"{what}: epoch", 0, MAX_EPOCH)
        done = self._entry.get("epochs", [])
        if done and e <= done[-1]:
            raise ValueError(f"{what}: epoch {e} after epoch {done[-1]} (epochs must increase)")
        given = {s: x for s, x in (("test", test), ("train", train)) if x is not None}
        if not given:
            raise ValueError(f"{what}: epoch {e}: no logits (give test= and/or train=)")
        if self._splits is not None and sorted(given) != self._splits:
            raise ValueError(f"{what}: epoch {e}: logits of {sorted(given)}, the earlier epochs "
                             f"have {self._splits} (the same splits every epoch)")
        arrays = rec._splits(given, f"{what}: epoch {e}: logits")
        if test_acc is not None:
            acc = _real(test_acc, f"{what}: epoch {e}: test_acc (percent)", 0, 100)
        if self._acc is not None and (test_acc is not None) != self._acc:
            raise ValueError(f"{what}: epoch {e}: test_acc " +
                             ("missing; the earlier epochs have one" if self._acc else
                              "given; the earlier epochs have none") + " (every epoch or none)")
        entry = dict(self._entry)
        entry["epochs"] = done + [e]
        logits = dict(entry.get("logits", {}))
        for s, a in arrays.items():
            logits[s] = logits.get(s, []) + [rec._save(f"{self._stem}_e{e}_{s}.npy", a)]
        entry["logits"] = logits
        if test_acc is not None:
            entry["test_acc"] = entry.get("test_acc", []) + [acc]
        runs = list(rec._m["runs"])
        if self._index is None:
            runs.append(entry)
        else:
            runs[self._index] = entry
        rec._write({**rec._m, "runs": runs})
        if self._index is None:
            self._index = len(runs) - 1
        self._entry = entry
        self._splits = sorted(arrays)
        self._acc = test_acc is not None
