#!/usr/bin/env python3
"""The experiment grid: for each configs/experiments/*.json, every method under budgets that are
fractions of backprop's peak at batch 128, through `neuroflux bench`; optionally the smallest
budget at which each method reaches the target accuracy, by bisection over budgets.

Resumable: a cell whose bench.json exists, or a bisection probe whose report exists, is skipped.
Progress: one line per cell with elapsed time and an ETA from the cells done so far."""
import argparse
import json
import math
import os
import subprocess
import sys
import time

from result_files import load, write_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# NEUROFLUX_BIN: another build (the tests run the grid on their own build folder).
BIN = os.environ.get("NEUROFLUX_BIN") or os.path.join(ROOT, "build", "neuroflux", "neuroflux")


def run(args, log):
    with open(log, "w") as out:
        return subprocess.call([BIN] + args, stdout=out, stderr=subprocess.STDOUT)


def write_json(path, value):
    write_atomic(path, json.dumps(value, indent=2))


class Progress:
    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.time()

    def step(self, what):
        self.done += 1
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {what}  elapsed {elapsed/60:.1f} min, "
              f"ETA {eta/60:.1f} min", flush=True)


def histories(cell_dir, bench, earlier):
    """Each bench row's validation curve, copied out of its run folder into summary.json (or
    kept from `earlier` once the folder is gone): the folders (models, caches) are not kept under
    results/, and the plots read only summary.json."""
    curves = {}
    for row in bench.get("rows", []):
        method = row["method"]
        report = os.path.join(cell_dir, method.replace("+", "_"), "report.json")
        if os.path.exists(report):
            curves[method] = [{"seconds": h["seconds"], "val_accuracy": h["val_accuracy"]}
                              for h in load(report).get("history", [])]
        elif method in earlier:
            curves[method] = earlier[method]
    return curves


def earlier_histories(summary_path):
    """Curves an earlier summary.json kept, by budget fraction: a resumed grid whose run
    folders were deleted keeps them."""
    if not os.path.exists(summary_path):
        return {}
    return {c["fraction"]: c.get("histories", {}) for c in load(summary_path).get("cells", [])}


def backprop_peak(config_path, out, overrides):
    """Backprop's measured peak at batch 128 (one short epoch: the peak does not depend on N)."""
    report = os.path.join(out, "backprop-peak", "report.json")
    if not os.path.exists(report):
        args = ["train", "--config", config_path, "--out", os.path.dirname(report),
                "--set", "method=backprop", "--set", "train.batch_size=128",
                "--set", "memory.budget=null", "--set", "train.epochs=1",
                "--set", "data.train_limit=1280"] + overrides
        os.makedirs(os.path.dirname(report), exist_ok=True)
        if run(args, os.path.dirname(report) + ".log") != 0:
            sys.exit(f"backprop peak run failed, see {os.path.dirname(report)}.log")
    return load(report)["peak_memory_bytes"]


def reaches(report_path, target):
    if not os.path.exists(report_path):
        return False
    history = load(report_path)["history"]
    return any(h["val_accuracy"] >= target for h in history)


def bisect(config_path, out, method, peak, target, overrides, steps, known=()):
    """Smallest budget (as a fraction of backprop's peak) at which `method` reaches `target`.
    `known`: grid fractions at which the method already reached the target; the smallest is the
    upper end (a method's accuracy need not grow with the budget: NeuroFlux plans differently
    under a loose budget, so 1.0 is not always a success)."""
    probes = []
    lo, hi = 0.01, min(known) if known else 1.0  # fractions: lo assumed failing, hi succeeds
    def probe(fraction):
        budget = int(fraction * peak)
        d = os.path.join(out, f"bisect-{method}", f"{budget}")
        report = os.path.join(d, "report.json")
        if not os.path.exists(report):
            os.makedirs(d, exist_ok=True)
            args = ["train", "--config", config_path, "--out", d, "--set", f"method={method}",
                    "--set", f"memory.budget={budget}"] + overrides
            if method == "backprop":
                args += ["--set", 'train.batch_size="auto"']
            code = run(args, os.path.join(d, "train.log"))
            ok = code == 0 and reaches(report, target)
        else:
            ok = reaches(report, target)
        probes.append({"fraction": fraction, "budget_bytes": budget, "reached": ok})
        return ok
    if not probe(hi):
        return {"method": method, "smallest_budget_bytes": None, "probes": probes}
    for _ in range(steps):
        mid = math.sqrt(lo * hi)  # geometric: budgets span orders of magnitude
        if probe(mid):
            hi = mid
        else:
            lo = mid
    return {"method": method, "smallest_budget_bytes": int(hi * peak),
            "smallest_fraction": hi, "target_accuracy": target, "probes": probes}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("configs", nargs="*")
    parser.add_argument("--bisect", action="store_true", help="also find the smallest budgets")
    parser.add_argument("--bisect-steps", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 6000 training samples, 1 epoch")
    parser.add_argument("--results", default=os.path.join(ROOT, "results"))
    args = parser.parse_args()
    configs = args.configs or sorted(
        os.path.join(ROOT, "configs", "experiments", f)
        for f in os.listdir(os.path.join(ROOT, "configs", "experiments")) if f.endswith(".json"))
    overrides = []
    if args.quick:
        overrides = ["--set", "data.train_limit=6000", "--set", "train.epochs=1"]

    cells = []
    for path in configs:
        cfg = load(path)
        exp = cfg.pop("experiment", {})
        name = os.path.splitext(os.path.basename(path))[0] + ("-quick" if args.quick else "")
        out = os.path.join(args.results, name)
        os.makedirs(out, exist_ok=True)
        plain = os.path.join(out, "config.json")
        write_json(plain, cfg)
        cells.append((name, out, plain, exp))
    total = sum(len(e.get("budget_fractions", [])) + (len(e.get("bisect_methods", []))
                if args.bisect else 0) + 1 for _, _, _, e in cells)
    progress = Progress(total)
    for name, out, plain, exp in cells:
        peak = backprop_peak(plain, out, overrides)
        progress.step(f"{name}: backprop peak at batch 128 = {peak} bytes")
        earlier = earlier_histories(os.path.join(out, "summary.json"))
        summary = {"name": name, "backprop_peak_at_128": peak, "cells": []}
        for f in exp.get("budget_fractions", []):
            budget = int(f * peak)
            d = os.path.join(out, f"budget-{f}")
            if not os.path.exists(os.path.join(d, "bench.json")):
                code = run(["bench", "--config", plain, "--out", d, "--resume",
                            "--methods", exp.get("methods", "backprop,local,neuroflux"),
                            "--set", f"memory.budget={budget}"] + overrides, d + ".log")
                if code != 0:
                    print(f"  bench under {budget} bytes exited {code}; see {d}.log", flush=True)
            if os.path.exists(os.path.join(d, "bench.json")):
                bench = load(os.path.join(d, "bench.json"))
                summary["cells"].append({"fraction": f, "budget_bytes": budget, "bench": bench,
                                         "histories": histories(d, bench, earlier.get(f, {}))})
            progress.step(f"{name}: budget {f} x peak = {budget} bytes")
        if args.bisect and summary["cells"]:
            loosest = max(summary["cells"], key=lambda c: c["fraction"])
            target = loosest["bench"]["target_accuracy"]
            summary["smallest_budgets"] = []
            for method in exp.get("bisect_methods", []):
                known = [c["fraction"] for c in summary["cells"] for r in c["bench"]["rows"]
                         if r.get("method") == method and (r.get("val_accuracy") or 0) >= target]
                result = bisect(plain, out, method, peak, target, overrides, args.bisect_steps,
                                known)
                summary["smallest_budgets"].append(result)
                progress.step(f"{name}: smallest budget for {method}: "
                              f"{result['smallest_budget_bytes']}")
        write_json(os.path.join(out, "summary.json"), summary)


if __name__ == "__main__":
    main()
