#!/usr/bin/python3
"""PyTorch twin of bench_train for the convolutional networks: the same model
and training step on the same kind of synthetic data, so bvtool's throughput
has a reference.

Models, written after RepDistiller's models/resnet.py, wrn.py and vgg.py
(github.com/HobbitLong/RepDistiller, the CRD benchmark), which nn/model.c
follows:
  resnet8|14|20|32|44|56|110, resnet8x4, resnet32x4  CIFAR ResNets (BasicBlock)
  wrn-16-1|16-2|40-1|40-2                             Wide ResNets (pre-activation)
  vgg8|11|13                                          VGG with batch norm (vgg8_bn ...)
  cnn-small   conv3x3 32-BN-ReLU-maxpool2, conv3x3 64-BN-ReLU-maxpool2, fc 128-ReLU, fc
RepDistiller's VGG skips its fourth max pooling (pool3) unless the input is
64 pixels high, so on 32x32 inputs its last block runs at 4x4. The forward
flops per sample (2 per multiply-add of the convolution and linear layers)
are printed so that bench/run_cnn.sh can check that both programs build the
same network.

One step: forward in train mode, cross-entropy, backward, SGD (lr 0.05,
momentum 0.9, weight decay 5e-4). Inputs uniform [0, 1) of shape --input
CxHxW, labels uniform over 10 classes, 8 distinct batches cycled.

--threads N sets torch.set_num_threads(N) (OpenMP, intra-op: oneDNN's
convolutions and ATen's own kernels run on these) and, because Debian's torch
reaches OpenBLAS through libblas.so.3 and torch.set_num_threads does not reach
OpenBLAS's own thread pool, OPENBLAS_NUM_THREADS=N before torch is imported;
--blas-threads M sets the latter alone. See bench/torch_mlp.py for why 2/2
can be slow on 2 cores.

Peak RSS is getrusage(RUSAGE_SELF).ru_maxrss at the end; base_rss_kb is the
same just after `import torch` (the interpreter and the libraries, before any
model or data), so peak - base is what the model, its data and the steps add.

Last line, for bench/run_cnn.sh:
  torch_train model=... input=... batch=... threads=... blas_threads=...
    samples_per_s=... gflops=... flops_per_sample=... base_rss_kb=... peak_rss_kb=...
--flops-only prints, instead, only
  torch_flops model=... input=... flops_per_sample=...
"""
import argparse
import os
import resource
import sys
import time

RESNETS = {
    "resnet8": (8, [16, 16, 32, 64]),
    "resnet14": (14, [16, 16, 32, 64]),
    "resnet20": (20, [16, 16, 32, 64]),
    "resnet32": (32, [16, 16, 32, 64]),
    "resnet44": (44, [16, 16, 32, 64]),
    "resnet56": (56, [16, 16, 32, 64]),
    "resnet110": (110, [16, 16, 32, 64]),
    "resnet8x4": (8, [32, 64, 128, 256]),
    "resnet32x4": (32, [32, 64, 128, 256]),
}
WRNS = {"wrn-16-1": (16, 1), "wrn-16-2": (16, 2), "wrn-40-1": (40, 1), "wrn-40-2": (40, 2)}
VGGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
}
MODELS = list(RESNETS) + list(WRNS) + list(VGGS) + ["cnn-small"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20", choices=MODELS, metavar="SPEC",
                   help="one of " + ", ".join(MODELS) + " (default %(default)s)")
    p.add_argument("--input", default="3x32x32", help="CxHxW of one sample (default %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="samples per step (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default %(default)s)")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS threads (default: --threads)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default %(default)s)")
    p.add_argument("--max-time", type=float, default=0.0,
                   help="stop the timed steps early once they have taken this many seconds "
                        "(at least one step; default 0: run all --steps)")
    p.add_argument("--flops-only", action="store_true",
                   help="print the forward flops per sample and exit")
    a = p.parse_args()
    try:
        a.shape = tuple(int(v) for v in a.input.lower().split("x"))
        if len(a.shape) != 3 or min(a.shape) < 1:
            raise ValueError
    except ValueError:
        p.error(f"--input: expected CxHxW (e.g. 3x32x32), got '{a.input}'")
    if a.batch < 1 or a.threads < 1 or a.steps < 1 or a.warmup < 0 or a.blas_threads < 0:
        p.error("--batch, --threads and --steps must be at least 1, --warmup at least 0")
    a.blas_threads = a.blas_threads or a.threads
    return a


def build(torch, name, in_shape, n_classes):
    nn = torch.nn
    F = torch.nn.functional

    def conv3x3(cin, cout, stride=1, bias=False):
        return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=bias)

    class BasicBlock(nn.Module):  # models/resnet.py
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = conv3x3(inplanes, planes, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            residual = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                residual = self.downsample(x)
            out += residual
            return F.relu(out)

    class ResNet(nn.Module):
        def __init__(self, depth, f):
            super().__init__()
            n = (depth - 2) // 6
            self.inplanes = f[0]
            self.conv1 = nn.Conv2d(in_shape[0], f[0], kernel_size=3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(f[0])
            self.relu = nn.ReLU(inplace=True)
            self.layer1 = self._make_layer(f[1], n)
            self.layer2 = self._make_layer(f[2], n, stride=2)
            self.layer3 = self._make_layer(f[3], n, stride=2)
            self.fc = nn.Linear(f[3], n_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def _make_layer(self, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes))
            layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes
            layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            # AvgPool2d(8) in RepDistiller: the same on 32x32 inputs (8x8 maps)
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
            return self.fc(x)

    class WideBlock(nn.Module):  # models/wrn.py
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(cin)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = conv3x3(cin, cout, stride)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(cout, cout)
            self.equal = cin == cout
            self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

        def forward(self, x):
            if not self.equal:
                x = self.relu1(self.bn1(x))
                out = x
            else:
                out = self.relu1(self.bn1(x))
            out = self.conv2(self.relu2(self.bn2(self.conv1(out))))
            return torch.add(x if self.equal else self.shortcut(x), out)

    class WideResNet(nn.Module):
        def __init__(self, depth, k):
            super().__init__()
            n = (depth - 4) // 6
            ch = [16, 16 * k, 32 * k, 64 * k]
            self.conv1 = nn.Conv2d(in_shape[0], ch[0], 3, 1, 1, bias=False)
            blocks = []
            for stage in range(3):
                for i in range(n):
                    blocks.append(WideBlock(ch[stage] if i == 0 else ch[stage + 1], ch[stage + 1],
                                            (1 if stage == 0 else 2) if i == 0 else 1))
            self.blocks = nn.Sequential(*blocks)
            self.bn1 = nn.BatchNorm2d(ch[3])
            self.relu = nn.ReLU(inplace=True)
            self.fc = nn.Linear(ch[3], n_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.blocks(self.conv1(x))))
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    class VGG(nn.Module):  # models/vgg.py with batch_norm=True (vgg8_bn, ...)
        def __init__(self, cfg):
            super().__init__()
            blocks, cin = [], in_shape[0]
            for c in cfg:
                layers = []
                for v in c:
                    layers += [conv3x3(cin, v, bias=True), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                    cin = v
                blocks.append(nn.Sequential(*layers[:-1]))  # the last ReLU is F.relu in forward
            self.blocks = nn.ModuleList(blocks)
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
            self.classifier = nn.Linear(cin, n_classes)

        def forward(self, x):
            h = x.shape[2]
            for i, blk in enumerate(self.blocks):
                x = F.relu(blk(x))
                if i < 3 or (i == 3 and h == 64):  # RepDistiller: pool3 only for 64x64
                    x = self.pool(x)
            return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))

    class CnnSmall(nn.Module):  # nn/model.c build_cnn_small
        def __init__(self):
            super().__init__()
            c, h, w = in_shape
            self.features = nn.Sequential(
                conv3x3(c, 32), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
                conv3x3(32, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2))
            self.fc1 = nn.Linear(64 * (h // 2 // 2) * (w // 2 // 2), 128)
            self.fc2 = nn.Linear(128, n_classes)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(self.features(x).flatten(1))))

    if name in RESNETS:
        return ResNet(*RESNETS[name])
    if name in WRNS:
        return WideResNet(*WRNS[name])
    if name in VGGS:
        return VGG(VGGS[name])
    return CnnSmall()


def flops_per_sample(torch, model, in_shape):
    """Forward flops of one sample, 2 per multiply-add of the convolution and
    linear layers (no biases, BN, ReLU or pooling), as bv_model_flops_per_sample."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total[0] += 2 * out[0].numel() * k
        else:
            total[0] += 2 * m.in_features * m.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *in_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total[0]


def main():
    a = parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.blas_threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch
    import torch.nn.functional as F

    base_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    n_classes, n_pool = 10, 8

    model = build(torch, a.model, a.shape, n_classes)
    if a.flops_only:
        print(f"torch_flops model={a.model} input={a.input} "
              f"flops_per_sample={flops_per_sample(torch, model, a.shape)}")
        return 0

    flops = flops_per_sample(torch, model, a.shape)
    n_params = sum(p.numel() for p in model.parameters())
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    x = torch.rand(n_pool, a.batch, *a.shape)
    y = torch.randint(0, n_classes, (n_pool, a.batch))

    def step(i):
        b = i % n_pool
        loss = F.cross_entropy(model(x[b]), y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup):
        step(i)
    start = time.perf_counter()
    steps = 0
    while steps < a.steps:
        loss = step(a.warmup + steps)
        steps += 1
        if a.max_time > 0 and time.perf_counter() - start > a.max_time:
            break
    loss = float(loss)
    elapsed = time.perf_counter() - start
    peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sps = steps * a.batch / elapsed
    gflops = sps * 3 * flops * 1e-9
    print(f"torch {torch.__version__}, model {a.model} ({n_params} parameters), "
          f"input {a.input}, batch {a.batch}, {torch.get_num_threads()} intra-op threads, "
          f"{a.blas_threads} OpenBLAS threads, mkldnn {torch.backends.mkldnn.is_available()}")
    print(f"{steps} steps in {elapsed:.3f} s: {elapsed * 1e3 / steps:.2f} ms/step, "
          f"final loss {loss:.4f}")
    print(f"{sps:.1f} samples/s, {gflops:.2f} GFLOP/s (3 x {flops} forward flops per sample)")
    print(f"peak RSS {peak_rss_kb / 1024:.1f} MiB ({base_rss_kb / 1024:.1f} MiB after import torch)")
    print(f"torch_train model={a.model} input={a.input} batch={a.batch} "
          f"threads={a.threads} blas_threads={a.blas_threads} samples_per_s={sps:.1f} "
          f"gflops={gflops:.3f} flops_per_sample={flops} base_rss_kb={base_rss_kb} "
          f"peak_rss_kb={peak_rss_kb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
