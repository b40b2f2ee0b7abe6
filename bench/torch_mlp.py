#!/usr/bin/python3
"""PyTorch twin of bench_train: the same MLP and training step on the same
kind of synthetic data, so bvtool's throughput has a reference.

Model mlp:H1-H2-...: Linear(784, H1) ReLU ... Linear(Hk, 10), He-normal weights
and zero biases as in nn/model.c. One step: forward, cross-entropy (or KD on
random teacher logits, T = 4, alpha = 2.25, gamma = 1), backward, SGD (lr 0.01,
momentum 0.9, weight decay 5e-4). Inputs uniform [0, 1), labels uniform over
10 classes, 8 distinct batches cycled.

--threads N sets torch.set_num_threads(N) (OpenMP, intra-op) and, because
Debian's torch reaches OpenBLAS through libblas.so.3 and torch.set_num_threads
does not reach OpenBLAS's own thread pool, OPENBLAS_NUM_THREADS=N before torch
is imported; --blas-threads M sets the latter alone. On 2 cores, OpenMP
threads spinning between parallel regions starve OpenBLAS's pthreads: with
--threads 2 PyTorch runs several times slower than with --threads 1 --blas-threads 2,
which is its best 2-core setting for an MLP (or OMP_WAIT_POLICY=passive).

Last line, for bench/run_mlp.sh:
  torch_train model=... batch=... threads=... blas_threads=... method=... samples_per_s=...

--data DIR trains end to end instead, as `bvtool train` does at its defaults,
for bench/train_default.sh: the IDX files of DIR (gzip, e.g. Debian's
/usr/share/datasets/fashion-mnist) read and normalised to (x / 255 - mean) / std
over the training pixels, --epochs epochs (default 3) of shuffled mini-batches
(the last one partial) with SGD at lr 0.05 on a cosine schedule, momentum 0.9,
weight decay 5e-4, each epoch followed by the evaluation of the test set. One
line per epoch; last line:
  test accuracy: NN.NN%
"""
import argparse
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mlp:1200-1200", help="mlp:H1-H2-... (default %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="samples per step (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default %(default)s)")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS threads (default: --threads)")
    p.add_argument("--steps", type=int, default=200, help="timed steps (default %(default)s)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (default %(default)s)")
    p.add_argument("--method", choices=["ce", "kd"], default="ce", help="loss (default %(default)s)")
    p.add_argument("--data", metavar="DIR",
                   help="train end to end on the IDX files of DIR, as bvtool train does")
    p.add_argument("--epochs", type=int, default=3, help="with --data (default %(default)s)")
    a = p.parse_args()
    if not a.model.startswith("mlp:"):
        p.error(f"--model: unknown model spec '{a.model}' (expected mlp:H1-H2-...)")
    try:
        body = a.model[4:]
        a.hidden = [] if body in ("", "0") else [int(h) for h in body.split("-")]
    except ValueError:
        p.error(f"--model: bad hidden widths in '{a.model}'")
    if a.batch < 1 or a.threads < 1 or a.steps < 1 or a.warmup < 0 or a.blas_threads < 0 \
            or a.epochs < 1:
        p.error("--batch, --threads, --steps and --epochs must be at least 1, --warmup at least 0")
    if a.data is not None and a.method != "ce":
        p.error("--data trains with --method ce only")
    a.blas_threads = a.blas_threads or a.threads
    return a


def main():
    a = parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.blas_threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    n_in, n_classes, n_pool, T, alpha = 784, 10, 8, 4.0, 2.25

    layers, prev = [], n_in
    for h in a.hidden + [n_classes]:
        lin = torch.nn.Linear(prev, h)
        torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")  # N(0, 2/fan_in)
        torch.nn.init.zeros_(lin.bias)
        layers += [lin, torch.nn.ReLU()]
        prev = h
    model = torch.nn.Sequential(*layers[:-1])
    model.train()
    if a.data is not None:
        return train_end_to_end(a, model, torch, F)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    x = torch.rand(n_pool, a.batch, n_in)
    y = torch.randint(0, n_classes, (n_pool, a.batch))
    t = torch.randn(n_pool, a.batch, n_classes) * 3.0
    pt = F.softmax(t / T, dim=2)

    def step(i):
        b = i % n_pool
        out = model(x[b])
        loss = F.cross_entropy(out, y[b])
        if a.method == "kd":
            h = -(pt[b] * F.log_softmax(out / T, dim=1)).sum(1).mean()
            loss = loss + alpha * T * T * h
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(a.steps):
        loss = step(a.warmup + i)
    loss = float(loss)  # synchronise (a no-op on the CPU, but explicit)
    elapsed = time.perf_counter() - start
    sps = a.steps * a.batch / elapsed
    flops = 2.0 * sum(m.in_features * m.out_features for m in model if isinstance(m, torch.nn.Linear))
    print(f"torch {torch.__version__}, model {a.model}, batch {a.batch}, "
          f"{torch.get_num_threads()} intra-op threads, {a.blas_threads} OpenBLAS threads, "
          f"method {a.method}")
    print(f"{a.steps} steps in {elapsed:.3f} s: {elapsed * 1e3 / a.steps:.2f} ms/step, "
          f"final loss {loss:.4f}")
    print(f"{sps:.0f} samples/s, {sps * 3 * flops * 1e-9:.2f} GFLOP/s")
    print(f"torch_train model={a.model} batch={a.batch} threads={a.threads} "
          f"blas_threads={a.blas_threads} method={a.method} "
          f"samples_per_s={sps:.1f} gflops={sps * 3 * flops * 1e-9:.3f}")
    return 0


def read_idx(path, dims):
    """The array of one gzip IDX file (magic 0x08 unsigned bytes, `dims` dimensions)."""
    import gzip
    import numpy as np
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * dims or raw[:4] != bytes([0, 0, 8, dims]):
        raise SystemExit(f"torch_mlp.py: '{path}' is not an IDX file of {dims} dimensions")
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise SystemExit(f"torch_mlp.py: '{path}' holds {data.size} bytes, its header {shape}")
    return data.reshape(shape)


def train_end_to_end(a, model, torch, F):
    """--data: bvtool train's loop (train/loop.c) at its defaults, in PyTorch."""
    import math
    import numpy as np
    d = a.data
    xs = [read_idx(f"{d}/{s}-images-idx3-ubyte.gz", 3) for s in ("train", "t10k")]
    ys = [read_idx(f"{d}/{s}-labels-idx1-ubyte.gz", 1) for s in ("train", "t10k")]
    # (v / 255 - mean) / std over every training pixel, as a table of the 256 bytes
    counts = np.bincount(xs[0].ravel(), minlength=256).astype(np.float64)
    v = np.arange(256) / 255.0
    mean = (counts * v).sum() / counts.sum()
    sd = math.sqrt((counts * (v - mean) ** 2).sum() / counts.sum())
    lut = ((v - mean) / sd).astype(np.float32)
    x_train, x_test = (torch.from_numpy(lut[x.reshape(len(x), -1)]) for x in xs)
    y_train, y_test = (torch.from_numpy(y.astype(np.int64)) for y in ys)
    if x_train.shape[1] != model[0].in_features:
        raise SystemExit(f"torch_mlp.py: '{d}' has {x_train.shape[1]} pixels an image, "
                         f"the model {model[0].in_features} inputs")
    base_lr, n, B = 0.05, len(x_train), a.batch
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(1)
    acc = 0.0
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / a.epochs))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        order = torch.randperm(n, generator=gen)
        sum_loss, correct = 0.0, 0
        for start in range(0, n, B):
            idx = order[start:start + B]
            xb, yb = x_train[idx], y_train[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sum_loss += float(loss) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
        model.eval()
        with torch.no_grad():
            test_correct = sum(int((model(x_test[i:i + 500]).argmax(1) == y_test[i:i + 500]).sum())
                               for i in range(0, len(x_test), 500))
        acc = test_correct / len(x_test)
        print(f"epoch {epoch + 1:3d}/{a.epochs}  lr {lr:.4f}  loss {sum_loss / n:.4f}  "
              f"train {100 * correct / n:6.2f}%  test {100 * acc:6.2f}%  "
              f"{time.perf_counter() - t0:.1f}s", flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
          f"{a.blas_threads} OpenBLAS threads")
    print(f"test accuracy: {100 * acc:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
