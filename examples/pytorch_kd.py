#!/usr/bin/python3
"""Train a teacher, then ce, kd and wsl students over bootstrap replicas of Fashion-MNIST, in
PyTorch, and record every run with python/bvtool_record.py for `bvtool import`.

    examples/pytorch_kd.py --out DIR [--seeds 3] [--methods ce,kd,wsl] [--temps 4]
                           [--epochs 3] [--subset 6000] [--record-train] [--threads 2]
    bvtool import --db runs.db DIR && bvtool decompose --db runs.db --temp 4

The data: the IDX files (gzip or raw) of --data, the first --subset training samples,
pixels scaled to (x / 255 - mean) / std with the training pixels' mean and std. The teacher
(an MLP, --teacher-hidden) trains once on those samples with seed 0. Replica r = 1..--seeds
trains on N indices drawn with replacement by numpy.random.default_rng(r) (the in-bag counts
are recorded); every method of replica r gets that draw, the initialisation of
torch.manual_seed(r) and the batch order of a generator seeded r, so the methods are paired.
Losses (SPEC.md), per batch, student logits s, teacher logits t, label y (loss_of):
    ce   mean_i CE_i                                CE_i = -log softmax(s_i)[y_i]
    kd   gamma mean_i CE_i + alpha T^2 mean_i H_i   H_i = -sum_k p_t[k] log p_s[k],
                                                    p = softmax(logits / T)
    wsl  gamma mean_i CE_i + alpha T^2 mean_i w_i H_i
         w_i = 1 - exp(-CE_i / (CEt_i + 1e-7)), CEt_i the teacher's CE, a constant (no
         gradient flows through it): the authors' released loss.
Every student records its test logits (and with --record-train the training subset's) after
each epoch; one line per run is printed. Rerun with the same --out and flags to resume: the
runs already recorded are skipped, a run cut short is retrained and recorded from where it
stopped (CPU training is deterministic at one thread count).
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bvtool_record import Recorder  # noqa: E402

METHODS = ("ce", "kd", "wsl")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the layout directory to write (or continue)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="directory of the IDX files (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="bootstrap replicas (default %(default)s)")
    p.add_argument("--methods", default="ce,kd,wsl", help="of ce, kd, wsl (default %(default)s)")
    p.add_argument("--temps", default="4", help="temperatures of kd and wsl (default %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="student epochs (default %(default)s)")
    p.add_argument("--subset", type=int, default=6000,
                   help="the first N training samples (default %(default)s; 0: all)")
    p.add_argument("--teacher-epochs", type=int, default=5, help="(default %(default)s)")
    p.add_argument("--teacher-hidden", default="256",
                   help="teacher widths H1-H2-... (default %(default)s)")
    p.add_argument("--hidden", default="32", help="student widths H1-H2-... (default %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="(default %(default)s)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD, momentum 0.9 (default %(default)s)")
    p.add_argument("--teacher-lr", type=float, default=0.05, help="(default %(default)s)")
    p.add_argument("--alpha", type=float, default=2.25, help="(default %(default)s)")
    p.add_argument("--gamma", type=float, default=1.0, help="(default %(default)s)")
    p.add_argument("--record-train", action="store_true", help="record the training subset too")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default %(default)s)")
    a = p.parse_args()
    a.methods = a.methods.split(",")
    for m in a.methods:
        if m not in METHODS:
            p.error(f"--methods: unknown method '{m}' (expected ce, kd or wsl)")
    try:
        a.temps = [float(t) for t in a.temps.split(",")]
        a.teacher_widths = [int(h) for h in a.teacher_hidden.split("-")]
        a.widths = [int(h) for h in a.hidden.split("-")]
    except ValueError as e:
        p.error(f"--temps, --hidden, --teacher-hidden: {e}")
    if min(a.temps) <= 0 or min(a.widths + a.teacher_widths) < 1:
        p.error("--temps must be > 0 and the widths at least 1")
    if (min(a.seeds, a.epochs, a.teacher_epochs, a.batch, a.threads) < 1 or a.subset < 0 or
            min(a.lr, a.teacher_lr) <= 0):
        p.error("--seeds, --epochs, --teacher-epochs, --batch, --threads must be at least 1, "
                "--subset at least 0, --lr and --teacher-lr > 0")
    return a


def read_idx(path, count=None):
    """An IDX file of unsigned bytes (gzip or raw) as a uint8 array; its first `count` items."""
    if not os.path.exists(path) and path.endswith(".gz") and os.path.exists(path[:-3]):
        path = path[:-3]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) != 4 or head[:3] != b"\0\0\x08" or not 1 <= head[3] <= 3:
            sys.exit(f"pytorch_kd.py: '{path}': not an IDX file of unsigned bytes")
        shape = struct.unpack(f">{head[3]}I", f.read(4 * head[3]))
        n = shape[0] if not count else min(count, shape[0])
        size = n * int(np.prod(shape[1:], dtype=np.int64))
        data = f.read(size)
        if len(data) != size:
            sys.exit(f"pytorch_kd.py: '{path}': truncated ({len(data)} of {size} data bytes)")
    return np.frombuffer(data, np.uint8).reshape((n,) + shape[1:])


def load(a):
    d = a.data
    x = read_idx(os.path.join(d, "train-images-idx3-ubyte.gz"), a.subset)
    y = read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"), a.subset)
    xt = read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
    yt = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    if len(x) != len(y) or len(xt) != len(yt):
        sys.exit(f"pytorch_kd.py: '{d}': images and labels differ in number")
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    xt = xt.reshape(len(xt), -1).astype(np.float32) / 255
    mean, std = x.mean(), x.std()
    return (x - mean) / std, y.astype(np.int64), (xt - mean) / std, yt.astype(np.int64)


def loss_of(method, s, y, t, T, alpha, gamma):
    """The batch loss of SPEC.md: student logits s (B, K), labels y (B,), teacher logits t."""
    import torch
    import torch.nn.functional as F
    ce = F.cross_entropy(s, y, reduction="none")                       # CE_i, untempered
    if method == "ce":
        return ce.mean()
    h = -(F.softmax(t / T, 1) * F.log_softmax(s / T, 1)).sum(1)        # H_i
    if method == "wsl":
        with torch.no_grad():          # w_i is a constant: no gradient flows through it
            w = 1 - torch.exp(-ce / (F.cross_entropy(t, y, reduction="none") + 1e-7))
        h = w * h
    return gamma * ce.mean() + alpha * T * T * h.mean()


def main():
    a = parse_args()
    # before torch loads: Debian's torch reaches OpenBLAS, whose pool set_num_threads misses;
    # OpenMP threads spinning between regions starve OpenBLAS's (bench/torch_mlp.py): on 2
    # cores the example takes 5 s with passive waiting and 20 s without
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)

    x, y, xt, yt = load(a)
    n, k = len(y), int(max(y.max(), yt.max())) + 1
    x, y, xt, yt = (torch.from_numpy(v) for v in (x, y, xt, yt))

    def mlp(widths, seed):
        torch.manual_seed(seed)
        layers, d = [], x.shape[1]
        for h in widths:
            layers += [torch.nn.Linear(d, h), torch.nn.ReLU()]
            d = h
        return torch.nn.Sequential(*layers, torch.nn.Linear(d, k))

    def evaluate(model, inputs):
        model.eval()
        with torch.no_grad():
            return model(inputs)

    def train(model, idx, seed, epochs, lr, method=None, T=None, teacher_logits=None, each=None):
        """SGD over the samples idx (with repeats), batches in the order of generator `seed`."""
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        order = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            for b in torch.randperm(len(idx), generator=order).split(a.batch):
                i = idx[b]
                s = model(x[i])
                loss = (F.cross_entropy(s, y[i]) if method is None else
                        loss_of(method, s, y[i], teacher_logits[i], T, a.alpha, a.gamma))
                opt.zero_grad()
                loss.backward()
                opt.step()
            if each:
                each(epoch)

    def acc(logits, labels):
        return 100.0 * (logits.argmax(1) == labels).double().mean().item()

    labels = {"test": yt.numpy(), "train": y.numpy()}
    with Recorder(a.out, dataset="fashion-mnist", classes=k, labels=labels) as rec:
        t0 = time.perf_counter()
        teacher = mlp(a.teacher_widths, 0)
        train(teacher, torch.arange(n), 0, a.teacher_epochs, a.teacher_lr)
        t_test, t_train = evaluate(teacher, xt), evaluate(teacher, x)
        rec.teacher(logits={"test": t_test, "train": t_train},
                    model="mlp:" + a.teacher_hidden, epoch=a.teacher_epochs,
                    test_acc=acc(t_test, yt))
        print(f"teacher mlp:{a.teacher_hidden}: test acc {acc(t_test, yt):.2f}% after epoch "
              f"{a.teacher_epochs} ({time.perf_counter() - t0:.1f} s)", flush=True)

        cells = [(m, None) for m in a.methods if m == "ce"]
        cells += [(m, T) for T in a.temps for m in a.methods if m != "ce"]
        for r in range(1, a.seeds + 1):
            draw = np.random.default_rng(r).integers(0, n, size=n)
            inbag = np.bincount(draw, minlength=n)
            idx = torch.from_numpy(draw)
            for method, T in cells:
                name = f"{method} seed {r}" if T is None else f"{method} T={T:g} seed {r}"
                soft = {} if T is None else {"temperature": T, "alpha": a.alpha,
                                             "gamma": a.gamma}
                run = rec.run(method, seed=r, model="mlp:" + a.hidden, inbag=inbag,
                              planned_epochs=a.epochs, lr=a.lr, batch=a.batch, **soft)
                if run.epochs and run.epochs[-1] >= a.epochs:
                    print(f"{name}: already recorded (epochs {run.epochs[0]}..{run.epochs[-1]})")
                    continue
                t1 = time.perf_counter()
                student = mlp(a.widths, r)
                last = {}

                def record(epoch):
                    if epoch in run.epochs:       # a resumed run: recorded before the cut
                        return
                    z = evaluate(student, xt)
                    last["acc"] = acc(z, yt)
                    run.record(epoch, test=z, test_acc=last["acc"],
                               train=evaluate(student, x) if a.record_train else None)

                train(student, idx, r, a.epochs, a.lr, method, T, t_train, record)
                print(f"{name}: test acc {last.get('acc', float('nan')):.2f}% after epoch "
                      f"{a.epochs} ({time.perf_counter() - t1:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
