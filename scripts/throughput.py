#!/usr/bin/env python3
"""Training throughput of `neuroflux train` (backprop) against PyTorch from Python on the same
network, batch, data and thread count, and the machine's sgemm speed measured in the same run.

For each model and batch: the C++ run trains two epochs and its second epoch is timed (the first
pays one-time costs: thread pool start, first touches); scripts/peer_bench.py warms up with a few
steps and times one epoch. Cells alternate C++ and Python, `--repeats` times, and report the median.

`--variants` runs the C++ side under other memory allocators too, to choose between them:
  cache     NeuroFlux's CPU block cache (the default build)
  nocache   the cache off (NEUROFLUX_CPU_CACHE_BYTES=0): glibc malloc as it comes
  glibc     the cache off, glibc told to keep its memory (mmap and trim thresholds 4 GiB)
  jemalloc  the cache off, Debian's jemalloc preloaded

Writes OUT/throughput.json and OUT/throughput.md (default results/throughput)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from result_files import load, write_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("NEUROFLUX_BIN") or os.path.join(ROOT, "build", "neuroflux", "neuroflux")
# Debian's python3-torch lives in the system interpreter, not in a pyenv or venv one.
PYTHON = os.environ.get("NEUROFLUX_PYTHON") or "/usr/bin/python3"
PEER = os.path.join(ROOT, "scripts", "peer_bench.py")
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

VARIANT_ENV = {
    "cache": {},
    "nocache": {"NEUROFLUX_CPU_CACHE_BYTES": "0"},
    "glibc": {"NEUROFLUX_CPU_CACHE_BYTES": "0", "MALLOC_MMAP_THRESHOLD_": "4294967296",
              "MALLOC_TRIM_THRESHOLD_": "4294967296", "MALLOC_TOP_PAD_": "268435456"},
    "jemalloc": {"NEUROFLUX_CPU_CACHE_BYTES": "0", "LD_PRELOAD": JEMALLOC},
}

# Images per cell: enough for a steady epoch of 10-30 s here, few enough to keep the grid short.
IMAGES = {"vgg11": 13500, "resnet18": 6000, "mobilenetv2": 3000}


def run_cpp(model, width, batch, images, threads, variant, workdir):
    out = os.path.join(workdir, f"cpp-{model}-{batch}-{variant}")
    args = [BIN, "train", "--config", os.path.join(ROOT, "configs", "vgg11-fmnist.json"),
            "--set", "method=backprop", "--set", f"model.name={model}",
            "--set", f"model.width={width}", "--set", f"train.batch_size={batch}",
            "--set", "train.epochs=2", "--set", f"data.train_limit={images}",
            "--set", f"threads={threads}", "--out", out]
    env = dict(os.environ, NEUROFLUX_QUIET="1", **VARIANT_ENV[variant])
    with open(out + ".log", "w") as log:
        code = subprocess.call(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        sys.exit(f"throughput: {' '.join(args)} exited {code}; see {out}.log")
    report = load(os.path.join(out, "report.json"))
    epoch = report["history"][-1]
    samples = report["train_samples"]
    if samples % batch == 1:
        samples -= 1  # run_epoch skips a last batch of one sample
    return {"images": samples, "seconds": epoch["epoch_seconds"],
            "images_per_second": samples / epoch["epoch_seconds"],
            "user_seconds": epoch["epoch_user_seconds"],
            "system_seconds": epoch["epoch_system_seconds"],
            "minor_faults": epoch["epoch_minor_faults"],
            "params": report["full_model_params"], "train_samples": report["train_samples"]}


def run_python(model, width, batch, images, threads, workdir):
    out = os.path.join(workdir, f"py-{model}-{batch}.json")
    args = [PYTHON, PEER, "--model", model, "--width", str(width), "--batch-size", str(batch),
            "--threads", str(threads), "--train-limit", str(images), "--epochs", "1",
            "--json", out]
    code = subprocess.call(args, stdout=subprocess.DEVNULL)
    if code != 0:
        sys.exit(f"throughput: {' '.join(args)} exited {code}")
    return load(out)


def sgemm(threads, workdir, coretype=None):
    """sgemm GFLOP/s, and the kernel OpenBLAS chose for this CPU: on a CPU it does not recognise
    it falls back to a generic one (measured here: Prescott, 34 GFLOP/s, where SkylakeX gives
    216), which slows every BLAS call of both programs alike. `coretype` forces a kernel."""
    out = os.path.join(workdir, "sgemm.json")
    env = dict(os.environ, OPENBLAS_VERBOSE="2")
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    printed = subprocess.run([PYTHON, PEER, "--sgemm", "--threads", str(threads), "--json", out],
                             env=env, check=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True).stdout
    core = next((line.split(":", 1)[1].strip() for line in printed.splitlines()
                 if line.startswith("Core:")), "unknown")
    return load(out)["sgemm_gflops"], core


def isa_coretype():
    """The OpenBLAS kernel this CPU's instruction set supports, from /proc/cpuinfo's flags."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return None
    if "avx512f" in flags:
        return "SkylakeX"
    return "Haswell" if "avx2" in flags and "fma" in flags else None


def median_run(runs):
    """The run with the median images/s (the middle one; the lower middle for an even count)."""
    ordered = sorted(runs, key=lambda r: r["images_per_second"])
    return ordered[(len(ordered) - 1) // 2]


def markdown(result):
    lines = [
        f"# Training throughput: `neuroflux train` (backprop) vs PyTorch {result['torch_version']}"
        " from Python",
        "",
        f"- Machine: {result['machine']}; {result['threads']} intra-op threads each; "
        f"{result['date']}.",
        f"- sgemm (2048^2, float32, same threads, same run): {result['sgemm_gflops']:.1f} GFLOP/s "
        f"(OpenBLAS kernel: {result['openblas_core']})" + (
            f"; {result['sgemm_isa_gflops']:.1f} GFLOP/s with the kernel for this CPU's ISA "
            f"(OPENBLAS_CORETYPE={result['isa_coretype']}), the denominator of 'of sgemm'."
            if result.get("sgemm_isa_gflops") else "."),
        f"- Command: `{result['command']}`; median of {result['repeats']} alternating runs per "
        "cell. C++: second of two epochs; Python: one epoch after a 3-step warm-up.",
        "- GFLOP/s counts forward + backward as 3x the forward's conv and linear FLOPs.",
        "",
        "| model | batch | variant | images | C++ img/s | Python img/s | C++ / Python | C++ system % "
        "| Python system % | C++ faults / step | C++ GFLOP/s | of sgemm |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in result["cells"]:
        py = cell["python"]
        for variant, cpp in cell["cpp"].items():
            steps = max(1, -(-cpp["images"] // cell["batch"]))
            gflops = cpp["images_per_second"] * py["train_flops_per_image"] / 1e9
            peak = result.get("sgemm_isa_gflops") or result["sgemm_gflops"]
            lines.append(
                f"| {cell['model']} | {cell['batch']} | {variant} | {cpp['images']} "
                f"| {cpp['images_per_second']:.0f} | {py['images_per_second']:.0f} "
                f"| {cpp['images_per_second'] / py['images_per_second']:.2f} "
                f"| {100 * cpp['system_seconds'] / cpp['seconds']:.1f} "
                f"| {100 * py['system_seconds'] / py['seconds']:.1f} "
                f"| {cpp['minor_faults'] / steps:.0f} | {gflops:.1f} "
                f"| {gflops / peak:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vgg11,resnet18,mobilenetv2")
    parser.add_argument("--batches", default="16,128")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="cache")
    parser.add_argument("--images-scale", type=float, default=1.0,
                        help="multiply each model's image count (0.1 for a smoke run)")
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "throughput"))
    args = parser.parse_args()
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANT_ENV:
            sys.exit(f"throughput: --variants: unknown variant '{v}' (one of {list(VARIANT_ENV)})")
    if "jemalloc" in variants and not os.path.exists(JEMALLOC):
        sys.exit(f"throughput: --variants jemalloc needs {JEMALLOC} (apt-get install libjemalloc2)")
    if not os.access(BIN, os.X_OK):
        sys.exit(f"throughput: {BIN} is not built (scripts/build.sh)")
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="neuroflux-throughput-")

    cells = []
    plan = [(m, int(b)) for m in args.models.split(",") for b in args.batches.split(",")]
    start = time.time()
    for done, (model, batch) in enumerate(plan):
        images = max(4 * batch, int(IMAGES.get(model, 6000) * args.images_scale))
        cpp_runs = {v: [] for v in variants}
        py_runs = []
        for _ in range(args.repeats):
            for v in variants:
                cpp_runs[v].append(run_cpp(model, args.width, batch, images, args.threads, v,
                                           workdir))
            py_runs.append(run_python(model, args.width, batch, images, args.threads, workdir))
        cell = {"model": model, "batch": batch,
                "cpp": {v: median_run(r) for v, r in cpp_runs.items()},
                "python": median_run(py_runs),
                "runs": {"cpp": cpp_runs, "python": py_runs}}
        if cell["python"]["images"] != cell["cpp"][variants[0]]["images"]:
            sys.exit(f"throughput: {model}: Python trained {cell['python']['images']} images per "
                     f"epoch, C++ {cell['cpp'][variants[0]]['images']}")
        if cell["python"]["params"] != cell["cpp"][variants[0]]["params"]:
            sys.exit(f"throughput: {model}: the Python network has {cell['python']['params']} "
                     f"parameters, the C++ one {cell['cpp'][variants[0]]['params']}: not the same "
                     "network")
        cells.append(cell)
        elapsed = time.time() - start
        eta = elapsed / (done + 1) * (len(plan) - done - 1)
        ratios = ", ".join(f"{v} {c['images_per_second'] / cell['python']['images_per_second']:.2f}x"
                           for v, c in cell["cpp"].items())
        print(f"[{done + 1}/{len(plan)}] {model} batch {batch}: C++/Python {ratios} "
              f"({elapsed:.0f} s, ETA {eta:.0f} s)", flush=True)

    sgemm_gflops, openblas_core = sgemm(args.threads, workdir)
    coretype = isa_coretype()
    isa_gflops = sgemm(args.threads, workdir, coretype)[0] if coretype else None
    py_version = cells[0]["python"].get("torch_version", "?") if cells else "?"
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core {os.uname().machine}",
        "threads": args.threads, "repeats": args.repeats, "torch_version": py_version,
        "command": "scripts/peer_bench.sh " + " ".join(sys.argv[1:]),
        "sgemm_gflops": sgemm_gflops, "openblas_core": openblas_core,
        "sgemm_isa_gflops": isa_gflops, "isa_coretype": coretype,
        "cells": cells,
    }
    write_atomic(os.path.join(args.out, "throughput.json"), json.dumps(result, indent=2) + "\n")
    write_atomic(os.path.join(args.out, "throughput.md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
