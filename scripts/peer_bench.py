#!/usr/bin/python3
"""The peer a user would run: plain PyTorch training the same network, on the same data, with the
same step as `neuroflux train --set method=backprop`, so its img/s is a fair yardstick.

Each piece mirrors a C++ source, named in its comment; a change there must be made here too.
The model prints its parameter count, to check against report.json's full_model_params.
Run it with Debian's interpreter (/usr/bin/python3, which has python3-torch): a python3 found
first on PATH (pyenv, a venv) may have no torch. Debian's 1.13.1 reports itself as "1.13.0a0".

  peer_bench.py --model vgg11 --width 0.25 --batch-size 128 --threads 2 --train-limit 13500 \\
                --epochs 1 --lr 0.05 --seed 1 --json OUT.json
  peer_bench.py --sgemm --threads 2 --json OUT.json      # float32 GEMM GFLOP/s of this torch
"""
import argparse
import gzip
import json
import math
import os
import resource
import statistics
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # data_splits.cpp's kFashionMnistRoot
MASK64 = (1 << 64) - 1


def llround(x):
    """std::llround: halves away from zero (Python's round() would round them to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


# ---- The model zoo (src/models/*.cpp) --------------------------------------------------------

def scaled_channels(channels, width):
    """model_zoo.cpp: channels x width rounded to nearest, at least 4."""
    return max(4, llround(channels * width))


def make_divisible(value, divisor=8, min_value=8):
    """model_zoo.cpp (torchvision's _make_divisible): nearest multiple of divisor, at least
    min_value, never more than 10% below value."""
    rounded = max(min_value, int(value + divisor / 2.0) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv(cin, cout, kernel, stride, bias):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias)


def append_pool(layers, height, width):
    """model_zoo.cpp: a 2x2 max-pool, but 1 along a side already 1 pixel; none when both are."""
    kh, kw = (2 if height >= 2 else 1), (2 if width >= 2 else 1)
    if kh == 1 and kw == 1:
        return height, width
    layers.append(nn.MaxPool2d((kh, kw), stride=(kh, kw)))
    return height // kh, width // kw


class BasicBlock(nn.Module):
    """blocks.cpp. Submodules are assigned in the C++ registration order, so init draws match."""

    def __init__(self, cin, cout, stride, bn):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not bn)
        self.bn1 = nn.BatchNorm2d(cout) if bn else None
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=not bn)
        self.bn2 = nn.BatchNorm2d(cout) if bn else None
        self.shortcut = None
        if stride != 1 or cin != cout:
            proj = [nn.Conv2d(cin, cout, 1, stride=stride, bias=not bn)]
            self.shortcut = nn.Sequential(*(proj + ([nn.BatchNorm2d(cout)] if bn else [])))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.conv1(x)
        if self.bn1 is not None:
            y = self.bn1(y)
        y = self.conv2(self.relu1(y))
        if self.bn2 is not None:
            y = self.bn2(y)
        y = y + (self.shortcut(x) if self.shortcut is not None else x)
        return self.relu2(y)


class InvertedResidual(nn.Module):
    """blocks.cpp: [1x1 expand +BN +ReLU6], 3x3 depthwise +BN +ReLU6, 1x1 linear projection +BN."""

    def __init__(self, cin, cout, stride, expand_ratio, bn):
        super().__init__()
        hidden = cin * expand_ratio
        layers = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=not bn)]
            layers += [nn.BatchNorm2d(hidden)] if bn else []
            layers += [nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden,
                             bias=not bn)]
        layers += [nn.BatchNorm2d(hidden)] if bn else []
        layers += [nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=not bn)]
        layers += [nn.BatchNorm2d(cout)] if bn else []
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def conv_unit(cin, cout, kernel, stride, bias, bn, act):
    return [conv(cin, cout, kernel, stride, bias)] + ([nn.BatchNorm2d(cout)] if bn else []) + [act()]


VGG = {  # vgg.cpp; 0 is a max-pool ("M")
    "vgg11": [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
    "vgg16": [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0],
    "vgg19": [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0,
              512, 512, 512, 512, 0],
}


def build_units(name, width, bn, cin, height, wide):
    """The zoo's builders: a list of units (layer lists) and the last unit's channel count."""
    units = []
    if name in VGG:  # vgg.cpp: convs keep their bias with BN too (as torchvision's vgg*_bn)
        for entry in VGG[name]:
            if entry == 0:  # the pool joins the unit of the conv before it
                height, wide = append_pool(units[-1], height, wide)
                continue
            out = scaled_channels(entry, width)
            units.append(conv_unit(cin, out, 3, 1, True, bn, nn.ReLU))
            cin = out
    elif name == "simplecnn":  # simplecnn.cpp
        for channels, pool in [(32, True), (64, True), (128, False), (128, True)]:
            out = scaled_channels(channels, width)
            units.append(conv_unit(cin, out, 3, 1, not bn, bn, nn.ReLU))
            if pool:
                height, wide = append_pool(units[-1], height, wide)
            cin = out
    elif name in ("resnet18", "resnet34"):  # resnet.cpp: CIFAR stem, no 7x7 conv or max-pool
        blocks = [2, 2, 2, 2] if name == "resnet18" else [3, 4, 6, 3]
        out = scaled_channels(64, width)
        units.append(conv_unit(cin, out, 3, 1, not bn, bn, nn.ReLU))
        cin = out
        for n, channels, stride in zip(blocks, [64, 128, 256, 512], [1, 2, 2, 2]):
            out = scaled_channels(channels, width)
            for b in range(n):  # only a stage's first block downsamples
                units.append([BasicBlock(cin, out, stride if b == 0 else 1, bn)])
                cin = out
    elif name == "mobilenetv2":  # mobilenetv2.cpp; small inputs keep stride 1 in stem, stage 1
        small = min(height, wide) <= 64
        out = make_divisible(32 * width)
        units.append(conv_unit(cin, out, 3, 1 if small else 2, not bn, bn, nn.ReLU6))
        cin = out
        stages = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                  (6, 160, 3, 2), (6, 320, 1, 1)]
        for s, (t, c, n, stride) in enumerate(stages):
            out = make_divisible(c * width)
            stride = 1 if small and s == 1 else stride
            for i in range(n):
                units.append([InvertedResidual(cin, out, stride if i == 0 else 1, t, bn)])
                cin = out
        last = make_divisible(1280 * max(1.0, width))  # the last conv only ever widens
        units.append(conv_unit(cin, last, 1, 1, not bn, bn, nn.ReLU6))
        cin = last
    else:
        raise SystemExit(f"unknown model {name!r}")
    return units, cin


def init_weights(module):
    """model_zoo.cpp init_weights, in the same module order."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.01)
                if m.bias is not None:
                    m.bias.zero_()


def build_model(name, width, bn, input_shape, num_classes):
    """model_zoo.cpp build_model: the units, then global average pool + flatten + linear."""
    units, channels = build_units(name, width, bn, *input_shape)
    model = nn.Sequential(
        nn.Sequential(*[nn.Sequential(*u) for u in units]),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)))
    init_weights(model)
    return model


def forward_flops(model, input_shape):
    """2 x the multiply-adds of the convs and linears for one image: conv 2 x outputs x
    (in_channels / groups) x kh x kw, linear 2 x in x out. Bias, BN, activations and pools are
    left out, the usual convention for a network's FLOPs."""
    total = 0

    def count(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += 2 * out.numel() * (m.in_channels // m.groups) * kh * kw
        else:
            total += 2 * m.in_features * m.out_features
    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()  # BN on a batch of one, and no running statistics touched
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train()
    for h in hooks:
        h.remove()
    return total


# ---- Data (src/data/readers.cpp, data_splits.cpp) --------------------------------------------

def read_idx(root, name, ndims, limit):
    """The first `limit` (0 = all) records of an IDX file, plain or .gz, as a uint8 tensor."""
    path = os.path.join(root, name)
    if not os.path.exists(path):
        path += ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    assert magic == 0x800 | ndims, f"{path}: not an IDX file of {ndims} dimension(s)"
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    n = dims[0] if limit <= 0 else min(limit, dims[0])
    record = math.prod(dims[1:])
    start = 4 + 4 * ndims
    raw = torch.frombuffer(bytearray(data[start:start + n * record]), dtype=torch.uint8)
    return raw.view(n, *dims[1:])


def load_train(root, limit, val_fraction, seed):
    """load_splits: pixels / 255, the first `limit` images, a held-out share chosen by a
    randperm seeded with `seed` (each split sorted, in file order), then per-channel
    standardisation by the training split's mean and (population) std."""
    images = read_idx(root, "train-images-idx3-ubyte", 3, limit).unsqueeze(1).float().div_(255.0)
    labels = read_idx(root, "train-labels-idx1-ubyte", 1, limit).long()
    n = images.size(0)
    n_val = llround(val_fraction * n)
    if n_val > 0:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        keep = order[n_val:].sort().values
        images, labels = images.index_select(0, keep), labels.index_select(0, keep)
    std, mean = torch.std_mean(images, dim=(0, 2, 3), unbiased=False)
    std.masked_fill_(std < 1e-12, 1.0)
    images.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return images, labels


def mix(x):
    """SplitMix64's finaliser (data_splits.cpp): the per-epoch shuffle seed."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


# ---- Training (src/train/{optim,backprop_trainer,training_loop}.cpp) -------------------------

def scheduled_lr(base_lr, epoch, epochs):
    """optim.cpp, the default cosine schedule, evaluated at the epoch's start."""
    return base_lr if epochs <= 1 else base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def train_step(model, optimizer, x, y):
    """BackpropTrainer's step. LibTorch 1.13's zero_grad() zeroes the gradients in place rather
    than dropping them, hence set_to_none=False."""
    optimizer.zero_grad(set_to_none=False)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach().argmax(1).eq(y).sum()


def run_epoch(model, optimizer, images, labels, batch_size, seed, epoch):
    """training_loop.cpp run_epoch over BatchSampler's batches: a (seed, epoch) randperm, batches
    gathered by index_select, batches under 2 samples skipped (BN cannot normalise one), the loss
    and hit count accumulated as tensors, as the C++ does every step (its progress line is left
    out). Returns the images stepped on, the mean loss and the accuracy."""
    order = torch.randperm(images.size(0), generator=torch.Generator().manual_seed(
        mix(seed ^ mix(epoch))))
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    seen = 0
    for start in range(0, order.size(0), batch_size):
        index = order[start:start + batch_size]
        x, y = images.index_select(0, index), labels.index_select(0, index)
        if x.size(0) < 2:
            continue
        loss, hits = train_step(model, optimizer, x, y)
        loss_sum += loss.double() * x.size(0)
        correct += hits
        seen += x.size(0)
    return seen, loss_sum.item() / max(1, seen), correct.item() / max(1, seen)


def sgemm_gflops(n=2048):
    """torch.mm of two n x n float32 matrices: median of 5 timings after 2 warm-ups."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = []
    for i in range(7):
        start = time.perf_counter()
        torch.mm(a, b)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def benchmark(args):
    torch.manual_seed(args.seed)  # run.cpp seeds the global generator before the model is built
    images, labels = load_train(args.data_root, args.train_limit, args.val_fraction, args.seed)
    input_shape = tuple(images.shape[1:])
    model = build_model(args.model, args.width, args.batch_norm, input_shape, 10)
    params = sum(p.numel() for p in model.parameters())
    flops = forward_flops(model, input_shape)
    # optim.cpp: SGD, Nesterov whenever there is momentum; foreach=False updates one parameter
    # at a time, as LibTorch's SGD does.
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay, nesterov=args.momentum > 0,
                                foreach=False)
    model.train()
    # Warm-up, untimed: first-touch allocations, momentum buffers, any lazy initialisation. (The
    # C++ epoch has no warm-up: its first steps pay these inside its timing.)
    for i in range(3):
        batch = slice(i * args.batch_size, (i + 1) * args.batch_size)
        train_step(model, optimizer, images[batch], labels[batch])

    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    seen = 0
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(args.lr, epoch, args.epochs)
        n, loss, accuracy = run_epoch(model, optimizer, images, labels, args.batch_size,
                                      args.seed, epoch)
        seen += n
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "model": args.model, "width": args.width, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "images": seen, "seconds": seconds,
        "images_per_second": seen / seconds,
        "user_seconds": after.ru_utime - usage.ru_utime,
        "system_seconds": after.ru_stime - usage.ru_stime,
        "minor_faults": after.ru_minflt - usage.ru_minflt,
        "params": params,
        "forward_flops_per_image": flops,
        # Training = 3 x forward: backward computes the input gradient and the weight gradient,
        # each a GEMM (convolution) of the forward's size.
        "train_flops_per_image": 3 * flops,
        "torch_version": torch.__version__,
        # The last epoch's, to set beside the C++ history: a sign the same training happened.
        "train_loss": loss, "train_accuracy": accuracy,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", choices=["vgg11", "vgg16", "vgg19", "resnet18", "resnet34",
                                       "mobilenetv2", "simplecnn"])
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (model.width)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = all cores")
    p.add_argument("--train-limit", type=int, default=0, help="first N training images (0 = all)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held out, as data.val_fraction")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=FASHION_MNIST)
    p.add_argument("--sgemm", action="store_true", help="measure float32 sgemm GFLOP/s only")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()

    # Inter-op threads first: it may only be set before any parallel work starts.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads if args.threads > 0 else os.cpu_count())
    if args.sgemm:
        result = {"sgemm_gflops": sgemm_gflops(), "threads": torch.get_num_threads(),
                  "torch_version": torch.__version__}
    else:
        if args.model is None:
            p.error("--model is required (or --sgemm)")
        result = benchmark(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
