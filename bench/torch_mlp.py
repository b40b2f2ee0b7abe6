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
    a = p.parse_args()
    if not a.model.startswith("mlp:"):
        p.error(f"--model: unknown model spec '{a.model}' (expected mlp:H1-H2-...)")
    try:
        body = a.model[4:]
        a.hidden = [] if body in ("", "0") else [int(h) for h in body.split("-")]
    except ValueError:
        p.error(f"--model: bad hidden widths in '{a.model}'")
    if a.batch < 1 or a.threads < 1 or a.steps < 1 or a.warmup < 0 or a.blas_threads < 0:
        p.error("--batch, --threads and --steps must be at least 1, --warmup at least 0")
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


if __name__ == "__main__":
    sys.exit(main())
