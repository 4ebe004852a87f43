#!/usr/bin/env python3
"""A benchmark reference, never part of the product: the step that `npm run -s bench:core` and
`npm run -s bench:bank` time, written in PyTorch (and the bank step in numpy too), so the benches can
print our speed next to a well-known framework's on the same machine, in the same run.

It does the same work as libs/core (same network shape, the same forwards and backwards, the same K
and D, float32), not bit-equal results:

  step   the full AdCo step of the fashion-mnist preset (--arch: resnet-mini by default, or
         resnet18-cifar at 32x32x3 or resnet50 at 224x224x3, as libs/core/src/encoder.ts lays them
         out; --device cuda for a GPU, which gpu:check uses): resnet-mini (28x28x1; stem 3x3 16; one basic
         block per stage at widths 16, 32, 64, stride 2 and a 1x1 projection shortcut in stages 2
         and 3; global average pool; MLP head 64 -> 64 -> 128), BatchNorm split into 8 groups (MoCo's
         SplitBatchNorm), keys from the momentum encoder on a shuffled batch without gradient, the
         query encoder's forward and backward (both views when --symmetric), the contrast against
         the batch's keys and K adversaries at t, the adversaries' ascent at t_mem with momentum and
         weight decay, SGD (momentum 0.9, weight decay 1e-4) and f_k <- m f_k + (1 - m) f_q.
  bank   the bank's side only (libs/core/src/shard.ts and adco.ts): per pair q.d (N x K) and q.k^T,
         the softmaxes at t and t_mem over keys and adversaries, dLoss/dq = sum p (v - k) / (N t), the
         adversary gradient q^T P / (N t_mem) projected off d (twice) and divided by |w|, the ascent.
  probe  which engines this interpreter has, as JSON; exits 0 either way.

Prints one JSON line: images/s (step) and ms per step, the median over --steps after --warmup steps.
  python3 tools/reference/adco_step.py step --batch 256 --negatives 4096 --threads 1 --steps 6
  python3 tools/reference/adco_step.py bank --negatives 65536 --batch 256 --dim 128 --pairs 2 --engine numpy
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

TEMPERATURE = 0.12
MEMORY_TEMPERATURE = 0.02
MEMORY_LR = 3.0
MEMORY_MOMENTUM = 0.9
MEMORY_WEIGHT_DECAY = 1e-4
SGD_MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
ENCODER_MOMENTUM = 0.99
LR = 0.03
BN_GROUPS = 8
# libs/core/src/encoder.ts's layouts: input (C, H, W), stem (filters, size, stride, max-pool), stage
# widths, blocks per stage, bottleneck blocks (ResNet-50 v1.5: the stride on the 3x3 conv).
LAYOUTS = {
    "resnet-mini": dict(input=(1, 28, 28), stem=(16, 3, 1, False), widths=(16, 32, 64), blocks=(1, 1, 1), bottleneck=False),
    "resnet18-cifar": dict(
        input=(3, 32, 32), stem=(64, 3, 1, False), widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), bottleneck=False
    ),
    "resnet50": dict(
        input=(3, 224, 224), stem=(64, 7, 2, True), widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3), bottleneck=True
    ),
}


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["step", "bank", "probe"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--negatives", type=int, default=4096, help="K")
    p.add_argument("--dim", type=int, default=128, help="D")
    p.add_argument("--pairs", type=int, default=2, help="bank: (query, key) pairs per step")
    p.add_argument("--symmetric", action="store_true", help="step: both views as queries")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=6, help="timed steps, after the warm-up")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--engine", choices=["torch", "numpy"], default="torch", help="bank only")
    p.add_argument("--arch", choices=sorted(LAYOUTS), default="resnet-mini", help="step only")
    p.add_argument("--device", default="cpu", help="step only: cpu, or cuda (timed with a synchronize)")
    return p.parse_args()


args = parse()
# Before numpy or torch load: their BLAS and OpenMP pools read these once.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)


def version_of(module):
    try:
        return __import__(module).__version__, None
    except Exception as e:  # ImportError, or a broken install
        return None, f"{type(e).__name__}: {e}"


def emit(result):
    print(json.dumps(result))


def timed(step, warmup, steps):
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - t0)
    return seconds


def blas_in_use():
    """Which BLAS this process loaded (Linux: its mapped libraries). Debian's python3-torch calls the
    system libblas.so.3, which is the netlib reference BLAS, tens of times slower at a matrix product,
    unless an optimised one (libopenblas0-pthread) is installed as its alternative."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "/" in line})
    except OSError:
        return "unknown", []
    libraries = [p for p in paths if any(n in os.path.basename(p).lower() for n in ("blas", "mkl", "blis"))]
    # Where the generic libblas.so.3 is loaded, its products come from it (it is found first), even
    # when another BLAS is mapped too (OpenBLAS's liblapack pulls in libopenblas).
    generic = [p for p in libraries if os.path.basename(p).startswith("libblas.so")]
    names = " ".join(generic or libraries).lower()
    for kind in ("openblas", "mkl", "blis"):
        if kind in names:
            return kind, libraries
    return ("netlib reference" if generic else "unknown"), libraries


def bn_groups_for(configured, n):
    """libs/core's bnGroupsFor: the configured count when it divides n, else the largest below it."""
    for g in range(min(configured, n // 2), 1, -1):
        if n % g == 0:
            return g
    return 1


if args.mode == "probe":
    torch_version, torch_error = version_of("torch")
    numpy_version, numpy_error = version_of("numpy")
    cuda, cuda_device = False, None
    if torch_version:
        import torch

        cuda = torch.cuda.is_available()
        cuda_device = torch.cuda.get_device_name(0) if cuda else None
    emit(
        {
            "python": platform.python_version(),
            "executable": sys.executable,
            "torch": torch_version,
            "torchError": torch_error,
            "numpy": numpy_version,
            "numpyError": numpy_error,
            "cuda": cuda,
            "cudaDevice": cuda_device,
        }
    )
    sys.exit(0)

if args.negatives < args.batch:
    sys.exit(f"K = {args.negatives} is smaller than the batch {args.batch}")


def step_mode():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    # A GPU runs asynchronously: a step is timed to its end.
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    class SplitBatchNorm(nn.BatchNorm2d):
        """BatchNorm over groups of the batch (MoCo's CIFAR demo), like BN on separate GPUs."""

        def __init__(self, channels, groups):
            super().__init__(channels)
            self.groups = groups

        def forward(self, x):
            n, c, h, w = x.shape
            g = self.groups
            mean = self.running_mean.repeat(g)
            var = self.running_var.repeat(g)
            y = F.batch_norm(
                x.view(-1, c * g, h, w),
                mean,
                var,
                self.weight.repeat(g),
                self.bias.repeat(g),
                True,
                self.momentum,
                self.eps,
            ).view(n, c, h, w)
            self.running_mean.copy_(mean.view(g, c).mean(0))
            self.running_var.copy_(var.view(g, c).mean(0))
            return y

    def conv_bn(cin, cout, size, stride, groups):
        return nn.Sequential(
            nn.Conv2d(cin, cout, size, stride, padding=size // 2, bias=False), SplitBatchNorm(cout, groups)
        )

    class Block(nn.Module):
        def __init__(self, cin, cout, stride, groups):
            super().__init__()
            self.a = conv_bn(cin, cout, 3, stride, groups)
            self.b = conv_bn(cout, cout, 3, 1, groups)
            self.proj = conv_bn(cin, cout, 1, stride, groups) if stride != 1 or cin != cout else None

        def forward(self, x):
            body = self.b(F.relu(self.a(x)))
            return F.relu(body + (self.proj(x) if self.proj is not None else x))

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride, groups):
            super().__init__()
            cout = width * 4
            self.a = conv_bn(cin, width, 1, 1, groups)
            self.b = conv_bn(width, width, 3, stride, groups)
            self.c = conv_bn(width, cout, 1, 1, groups)
            self.proj = conv_bn(cin, cout, 1, stride, groups) if stride != 1 or cin != cout else None

        def forward(self, x):
            body = self.c(F.relu(self.b(F.relu(self.a(x)))))
            return F.relu(body + (self.proj(x) if self.proj is not None else x))

    class Resnet(nn.Module):
        """libs/core/src/encoder.ts's ResNet of one layout, with the 2-layer MLP head."""

        def __init__(self, layout, groups, dim):
            super().__init__()
            filters, size, stride, pool = layout["stem"]
            self.stem = conv_bn(layout["input"][0], filters, size, stride, groups)
            self.pool = nn.MaxPool2d(3, 2, padding=1) if pool else None
            blocks, channels = [], filters
            for stage, (width, count) in enumerate(zip(layout["widths"], layout["blocks"])):
                for block in range(count):
                    s = 2 if block == 0 and stage > 0 else 1
                    if layout["bottleneck"]:
                        blocks.append(Bottleneck(channels, width, s, groups))
                        channels = width * 4
                    else:
                        blocks.append(Block(channels, width, s, groups))
                        channels = width
            self.stages = nn.Sequential(*blocks)
            self.head = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, dim))

        def forward(self, x):
            x = F.relu(self.stem(x))
            if self.pool is not None:
                x = self.pool(x)
            x = self.stages(x)
            return F.normalize(self.head(x.mean((2, 3))), dim=1)

    n, k_size, dim = args.batch, args.negatives, args.dim
    groups = bn_groups_for(BN_GROUPS, n)
    layout = LAYOUTS[args.arch]
    f_q = Resnet(layout, groups, dim).to(device)
    f_k = Resnet(layout, groups, dim).to(device)
    f_k.load_state_dict(f_q.state_dict())
    for p in f_k.parameters():
        p.requires_grad_(False)
    sgd = torch.optim.SGD(f_q.parameters(), lr=LR, momentum=SGD_MOMENTUM, weight_decay=WEIGHT_DECAY)
    bank = F.normalize(torch.randn(dim, k_size), dim=0).to(device)  # D x K, as libs/core stores it
    velocity = torch.zeros(dim, k_size, device=device)
    views = [(torch.rand(n, *layout["input"]) * 3 - 1).to(device) for _ in range(2)]
    labels = torch.arange(n, device=device)

    def keys_of(view):
        with torch.no_grad():
            order = torch.randperm(n).to(device)
            k = f_k(view[order])
            return k[torch.argsort(order)]

    def step():
        nonlocal bank, velocity
        key1 = keys_of(views[1])
        pairs = [(views[0], key1)]
        if args.symmetric:
            pairs.append((views[1], keys_of(views[0])))
        norms = bank.norm(dim=0, keepdim=True)  # 1 x K
        directions = bank / norms
        loss = 0.0
        gradient = torch.zeros_like(bank)
        for view, key in pairs:
            q = f_q(view)
            key_logits = q @ key.t()  # N x N, the positive on the diagonal
            cosines = q @ directions  # N x K
            logits = torch.cat([key_logits, cosines], 1) / TEMPERATURE
            loss = loss + F.cross_entropy(logits, labels) / len(pairs)
            with torch.no_grad():
                # The ascent at t_mem, from the bank as the step found it.
                mem = torch.cat([key_logits, cosines], 1) / MEMORY_TEMPERATURE
                probs = torch.softmax(mem, 1)[:, n:]  # N x K
                g = q.t() @ probs / (n * MEMORY_TEMPERATURE)  # D x K
                for _ in range(2):  # projected off d twice, as shard.ts does
                    g = g - directions * (g * directions).sum(0, keepdim=True)
                gradient += g / norms / len(pairs)
            # The batch's accuracy, as the step's statistics report it (one sync per pair).
            (logits.argmax(1) == labels).float().mean().item()
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        sgd.step()
        with torch.no_grad():
            velocity = MEMORY_MOMENTUM * velocity - gradient + MEMORY_WEIGHT_DECAY * bank
            bank = bank - MEMORY_LR * velocity
            for pk, pq in zip(f_k.parameters(), f_q.parameters()):
                pk.mul_(ENCODER_MOMENTUM).add_(pq.detach(), alpha=1 - ENCODER_MOMENTUM)
        synchronize()

    seconds = timed(step, args.warmup, args.steps)
    median = statistics.median(seconds)
    return {
        "engine": "torch",
        "version": torch.__version__,
        "arch": args.arch,
        "device": str(device),
        "deviceName": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "imagesPerSecond": n / median,
        "msPerStep": median * 1000,
        "seconds": seconds,
        "groups": groups,
        "parameters": sum(p.numel() for p in f_q.parameters()),
    }


def bank_mode():
    n, k_size, dim, pairs = args.batch, args.negatives, args.dim, args.pairs
    if args.engine == "torch":
        import torch as xp

        xp.set_num_threads(args.threads)
        gen = xp.Generator().manual_seed(1)
        randn = lambda *shape: xp.randn(*shape, generator=gen)  # noqa: E731
        exp, log, eye = xp.exp, xp.log, lambda m: xp.eye(m)
        amax = lambda x: x.amax(1, keepdim=True)  # noqa: E731
        rowsum = lambda x: x.sum(1, keepdim=True)  # noqa: E731
        colsum = lambda x: x.sum(0, keepdim=True)  # noqa: E731
        tr = lambda x: x.t()  # noqa: E731
        threads = xp.get_num_threads()
        version = xp.__version__
    else:
        import numpy as xp

        rng = xp.random.default_rng(1)
        randn = lambda *shape: rng.standard_normal(shape, dtype=xp.float32)  # noqa: E731
        exp, log, eye = xp.exp, xp.log, lambda m: xp.eye(m, dtype=xp.float32)
        amax = lambda x: x.max(1, keepdims=True)  # noqa: E731
        rowsum = lambda x: x.sum(1, keepdims=True)  # noqa: E731
        colsum = lambda x: x.sum(0, keepdims=True)  # noqa: E731
        tr = lambda x: x.T  # noqa: E731
        threads = args.threads  # OMP/OpenBLAS threads, set above
        version = xp.__version__

    def unit_rows(m):
        x = randn(m, dim)
        return x / (rowsum(x * x) ** 0.5)

    weights = randn(dim, k_size)
    weights = weights / (colsum(weights * weights) ** 0.5)
    velocity = weights * 0
    off_diagonal = 1 - eye(n)
    batches = [(unit_rows(n), unit_rows(n)) for _ in range(2)]
    state = {"weights": weights, "velocity": velocity, "step": 0}

    def log_z(key_logits, logits):
        m = xp.maximum(amax(key_logits), amax(logits))
        return m + log(rowsum(exp(key_logits - m)) + rowsum(exp(logits - m)))  # N x 1

    def step():
        weights, velocity = state["weights"], state["velocity"]
        q0, k0 = batches[state["step"] % len(batches)]
        state["step"] += 1
        norms = colsum(weights * weights) ** 0.5  # 1 x K
        directions = weights / norms  # D x K
        directions_t = tr(directions)
        gradient = None
        loss = 0.0
        for q, k in [(q0, k0), (k0, q0)][:pairs]:
            key_cosines = q @ tr(k)  # N x N
            cosines = q @ directions  # N x K
            # The encoder's side at t: loss and dLoss/dq = sum over negatives p (v - k) / (N t).
            kl, al = key_cosines / TEMPERATURE, cosines / TEMPERATURE
            lz = log_z(kl, al)
            key_probs = exp(kl - lz) * off_diagonal
            probs = exp(al - lz)  # N x K
            negative_sum = key_probs @ k + probs @ directions_t  # N x D
            negative_mass = rowsum(key_probs) + rowsum(probs)
            dq = (negative_sum - negative_mass * k) / (n * TEMPERATURE)  # noqa: F841 (the answer)
            positives = rowsum(q * k) / TEMPERATURE
            loss += float((lz - positives).mean()) / pairs
            # The adversaries' side at t_mem, through d = w / |w|.
            kl, al = key_cosines / MEMORY_TEMPERATURE, cosines / MEMORY_TEMPERATURE
            memory_probs = exp(al - log_z(kl, al))  # N x K
            g = tr(q) @ memory_probs / (n * MEMORY_TEMPERATURE)  # D x K
            for _ in range(2):
                g = g - directions * colsum(g * directions)
            g = g / norms / pairs
            gradient = g if gradient is None else gradient + g
        velocity = MEMORY_MOMENTUM * velocity - gradient + MEMORY_WEIGHT_DECAY * weights
        state["weights"] = weights - MEMORY_LR * velocity
        state["velocity"] = velocity

    seconds = timed(step, args.warmup, args.steps)
    median = statistics.median(seconds)
    return {
        "engine": args.engine,
        "version": version,
        "threads": threads,
        "msPerStep": median * 1000,
        "seconds": seconds,
    }


if args.mode == "step":
    result = step_mode()
else:
    result = bank_mode()
blas, blas_libraries = blas_in_use()
emit(
    {
        "mode": args.mode,
        "batch": args.batch,
        "negatives": args.negatives,
        "dim": args.dim,
        "steps": args.steps,
        "warmup": args.warmup,
        **({"symmetric": args.symmetric} if args.mode == "step" else {"pairs": args.pairs}),
        **result,
        "blas": blas,
        "blasLibraries": blas_libraries,
    }
)
