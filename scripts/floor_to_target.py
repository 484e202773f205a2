#!/usr/bin/env python3
"""The smallest budget at which each method reaches the accuracy target (README "The memory floor
to the target"), on one config: backprop; the backprop baselines with host optimizer state and
fused updates, with and without optimal recomputation (memory.strategy=checkpoint); NeuroFlux
with the same options. Ratios against plain backprop and against backprop+host+fused.

  scripts/floor_to_target.py [--config C] [--epochs 4] [--threads 1] [--steps 3] [OUT]

1. Target: 0.98 x the best validation accuracy of backprop without a budget at the config's
   batch, over the same data, epochs and seed (as `neuroflux bench` sets a cell's target).
2. For each variant, the smallest budget it fits: the one `neuroflux plan` (NeuroFlux) or a batch
   "auto" trial (backprop) names under a 1 MiB budget. A whole run is trained there; a run refused
   (exit 4) is retried at the larger budget it names, else 5% higher (profiles vary by a few
   percent between runs).
3. If the run that fits reaches the target, that budget is the floor to the target: nothing runs
   below it. Otherwise a geometric bisection between it (misses) and backprop's unbounded peak
   (reaches) for --steps probes.

Resumable: a probe whose probe.json exists is not run again. Each probe's report and log are in
OUT/<variant>/<budget>/; the table goes to OUT/summary.md and OUT/summary.json.
NEUROFLUX_BIN names the executable (default build/neuroflux/neuroflux)."""
import argparse
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiments import BIN, ROOT, Progress, reaches, run, write_json  # noqa: E402
from result_files import load  # noqa: E402

HOST_FUSED = ["--set", "memory.optimizer_state=host", "--set", "train.fused_update=true"]
VARIANTS = [
    ("backprop", ["--set", "method=backprop"]),
    ("backprop+host+fused", ["--set", "method=backprop"] + HOST_FUSED),
    ("backprop+checkpoint+host+fused",
     ["--set", "method=backprop", "--set", "memory.strategy=checkpoint"] + HOST_FUSED),
    ("neuroflux+host+fused", ["--set", "method=neuroflux"] + HOST_FUSED),
]


def named_budget(log):
    """The smallest budget a refused run or plan names ("... would work is N bytes ...")."""
    with open(log) as f:
        found = re.findall(r"would work is [^)]*?(\d+) bytes", f.read())
    return int(found[-1]) if found else None


def best_val(report):
    return max((h["val_accuracy"] for h in load(report).get("history", [])), default=0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "runs", "floor_to_target"))
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "vgg11-fmnist.json"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--steps", type=int, default=3, help="bisection probes after a miss")
    parser.add_argument("--variants", default=",".join(v for v, _ in VARIANTS))
    parser.add_argument("--set", action="append", default=[], dest="sets",
                        help="one more override for every run (key=value)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    common = ["--config", args.config, "--threads", args.threads,
              "--set", f"train.epochs={args.epochs}"]
    for s in args.sets:
        common += ["--set", s]
    chosen = [(n, o) for n, o in VARIANTS if n in args.variants.split(",")]
    progress = Progress(1 + 2 * len(chosen))
    os.environ.setdefault("NEUROFLUX_QUIET", "1")

    # 1. The target, from backprop without a budget.
    ref = os.path.join(args.out, "backprop-unbounded")
    if not os.path.exists(os.path.join(ref, "report.json")):
        os.makedirs(ref, exist_ok=True)
        code = run(["train"] + common + ["--out", ref, "--set", "method=backprop",
                                         "--set", "memory.budget=null"], ref + ".log")
        if code != 0:
            sys.exit(f"the unbounded backprop run failed (exit {code}), see {ref}.log")
    ref_report = load(os.path.join(ref, "report.json"))
    ceiling = ref_report["peak_memory_bytes"]
    target = 0.98 * best_val(os.path.join(ref, "report.json"))
    progress.step(f"target {target:.4f} (backprop unbounded: best val "
                  f"{best_val(os.path.join(ref, 'report.json')):.4f}, peak {ceiling} B)")

    def probe(name, options, budget):
        """Trains `name` under `budget`; returns its probe record (cached in probe.json)."""
        d = os.path.join(args.out, name, str(budget))
        record_path = os.path.join(d, "probe.json")
        if os.path.exists(record_path):
            return load(record_path)
        os.makedirs(d, exist_ok=True)
        extra = ["--set", 'train.batch_size="auto"'] if "method=backprop" in options else []
        log = os.path.join(d, "train.log")
        code = run(["train"] + common + options + extra +
                   ["--out", d, "--set", f"memory.budget={budget}"], log)
        report = os.path.join(d, "report.json")
        record = {"budget_bytes": budget, "exit": code, "named_budget": named_budget(log)}
        if code == 0 and os.path.exists(report):
            r = load(report)
            record.update(best_val=best_val(report), reached=reaches(report, target),
                          test_accuracy=r.get("final", {}).get("test_accuracy"),
                          exit_unit=r.get("final", {}).get("exit_unit"),
                          peak_bytes=r.get("peak_memory_bytes"),
                          seconds=r.get("train_seconds"),
                          batches=[b.get("batch_size") for b in r.get("blocks", [])])
        else:
            record["reached"] = False
        write_json(record_path, record)
        return record

    results = []
    for name, options in chosen:
        # 2. The smallest budget it fits.
        plan_log = os.path.join(args.out, name + "-named.log")
        if "method=neuroflux" in options:
            cmd = ["plan"] + common + options + ["--set", "memory.budget=1MiB"]
        else:
            cmd = (["train"] + common + options +
                   ["--out", os.path.join(args.out, name + "-named"),
                    "--set", 'train.batch_size="auto"', "--set", "memory.budget=1MiB"])
        if not os.path.exists(plan_log):
            run(cmd, plan_log)
        named = named_budget(plan_log)
        if named is None:
            sys.exit(f"{name}: no smallest budget named in {plan_log}")
        budget, probes, fit = named, [], None
        for _ in range(4):
            p = probe(name, options, budget)
            probes.append(p)
            if p["exit"] == 0:
                fit = p
                break
            if p["exit"] != 4:
                sys.exit(f"{name}: the run under {budget} B failed with exit {p['exit']}, see "
                         f"{os.path.join(args.out, name, str(budget), 'train.log')}")
            budget = (p["named_budget"] if p["named_budget"] and p["named_budget"] > budget
                      else budget * 105 // 100)
        progress.step(f"{name}: fits at {fit and fit['budget_bytes']} B (named {named} B), "
                      f"best val {fit and fit.get('best_val')}")
        # 3. The floor to the target.
        floor = None
        if fit is not None and fit["reached"]:
            floor = fit["budget_bytes"]
        elif fit is not None:
            lo, hi = fit["budget_bytes"], ceiling
            for _ in range(args.steps):
                mid = int(math.sqrt(lo * hi))
                p = probe(name, options, mid)
                probes.append(p)
                if p["reached"]:
                    hi = mid
                else:
                    lo = mid
            floor = hi
        progress.step(f"{name}: floor to the target {floor} B")
        results.append({"variant": name, "named_budget_bytes": named,
                        "fits_at_bytes": fit and fit["budget_bytes"],
                        "floor_to_target_bytes": floor, "probes": probes})

    by_name = {r["variant"]: r for r in results}

    # The strongest baseline: the backprop variant with the smallest floor to the target.
    baselines = [r for r in results if r["variant"].startswith("backprop+")
                 and r["floor_to_target_bytes"]]
    strongest = min(baselines, key=lambda r: r["floor_to_target_bytes"])["variant"] \
        if baselines else None

    def ratio(r, base):
        b = by_name.get(base, {}).get("floor_to_target_bytes")
        f = r["floor_to_target_bytes"]
        return f"{f / b:.3f}" if f and b else "-"

    summary = {"config": args.config, "epochs": args.epochs, "threads": args.threads,
               "target_accuracy": target, "backprop_unbounded_peak_bytes": ceiling,
               "backprop_unbounded_best_val": best_val(os.path.join(ref, "report.json")),
               "backprop_unbounded_test": ref_report.get("final", {}).get("test_accuracy"),
               "strongest_baseline": strongest, "variants": results}
    write_json(os.path.join(args.out, "summary.json"), summary)
    lines = [f"# Floor to the target: {os.path.basename(args.config)}, {args.epochs} epochs, "
             f"--threads {args.threads}", "",
             f"Target validation accuracy {target:.4f} (0.98 x backprop's unbounded best "
             f"{summary['backprop_unbounded_best_val']:.4f}; its peak {ceiling} B).", "",
             f"Strongest baseline (smallest backprop floor to the target): {strongest}.", "",
             "| variant | named | fits at | best val there | test there | floor to target | "
             "vs backprop | vs strongest baseline |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        fit = next((p for p in r["probes"] if p["budget_bytes"] == r["fits_at_bytes"]), {})
        lines.append(f"| {r['variant']} | {r['named_budget_bytes']} | {r['fits_at_bytes']} | "
                     f"{fit.get('best_val', '-')} | {fit.get('test_accuracy', '-')} | "
                     f"{r['floor_to_target_bytes']} | {ratio(r, 'backprop')} | "
                     f"{ratio(r, strongest)} |")
    lines += ["", "Probes (budget: exit, batch per block, best val, reached, peak, train s):", ""]
    for r in results:
        for p in r["probes"]:
            lines.append(f"- {r['variant']} {p['budget_bytes']}: exit {p['exit']}, batch "
                         f"{p.get('batches', '-')}, best val {p.get('best_val', '-')}, "
                         f"reached {p['reached']}, peak {p.get('peak_bytes', '-')}, "
                         f"{p.get('seconds', '-')} s")
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
