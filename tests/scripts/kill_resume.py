#!/usr/bin/env python3
"""Kill anywhere: SIGKILLs `neuroflux train` at points spread over its phases, resumes it with
--resume, and requires what the uninterrupted run gave: the same history (every column but times
and page faults), exit unit, validation and test accuracy, and no temporary file left behind.

A resumed run sees only what the killed one left on disk, so a phase is an interval between two
observable events (a file appearing, a log line), and a kill point is a fraction of that interval
as the reference run timed it. After each kill the script checks that the phase's first event had
happened and its last had not: the kill landed where it says. A kill that came too late (a busy
machine) is retried earlier in the interval.

Usage: kill_resume.py NEUROFLUX_BIN [--points ci|all|N] [--keep DIR]
  ci (the CTest entry): one kill in profiling, cache writing, export and backprop with offload.
  all: every point below (13). N: the first N of the list below, which interleaves the phases.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

POLL_SECONDS = 0.002
TIMING_KEYS = ("second", "fault")   # history fields that differ between two identical runs


# ---- events: what a killed run leaves on disk ----------------------------------------------

def exists(name):
    return lambda out, log: os.path.exists(os.path.join(out, name))


def checkpoint_step(at_least):
    """The checkpoint's step (NeuroFlux: blocks done; backprop: epochs done) reached `at_least`."""
    def event(out, log):
        try:
            with open(os.path.join(out, "checkpoint", "state.json")) as f:
                return json.load(f)["step"] >= at_least
        except (OSError, ValueError, KeyError):
            return False
    return event


def cache_started(block):
    """The caching pass of `block` opened its first file (the temporary, or the file renamed)."""
    return lambda out, log: bool(glob.glob(os.path.join(out, "cache", f"block{block}-*.nfcache*")))


def log_has(text):
    def event(out, log):
        try:
            with open(log, errors="replace") as f:
                return text in f.read()
        except OSError:
            return False
    return event


# ---- scenarios -----------------------------------------------------------------------------

SYNTHETIC = {"name": "synthetic", "image_size": 16, "channels": 1, "num_classes": 4,
             "train_size": 3000, "test_size": 1000}

# NeuroFlux by a pinned plan (measured timings make planning vary): one unit per block, so every
# block ends in a disk cache and a checkpoint; fixed heads, so the plan is the same every time.
PINNED = {
    "config": {"method": "neuroflux", "seed": 3, "threads": 1,
               "model": {"name": "simplecnn", "width": 0.25}, "data": SYNTHETIC,
               "train": {"epochs": 2, "batch_size": 16, "max_batch_size": 64},
               "neuroflux": {"progressive_exit": False, "aux": "fixed", "aux_width": 16,
                             "cache": {"where": "disk"}}},
    "pin_plan": True,
    "same_plan": False,
    "offload_budget": None,
    "events": [("config.json", exists("config.json")),
               ("block 0 caching", cache_started(0)),
               ("checkpoint 1", checkpoint_step(1)),
               ("block 1 caching", cache_started(1)),
               ("checkpoint 2", checkpoint_step(2)),
               ("block 2 caching", cache_started(2)),
               ("checkpoint 3", checkpoint_step(3)),
               ("checkpoint 4", checkpoint_step(4)),
               ("report.json", exists("report.json"))],
}

# NeuroFlux that profiles and plans. The plan is fixed by construction, not by timings: fixed
# heads, no unit modes, no budget (every block takes max_batch_size) and one epoch count for every
# unit (shallow_epoch_fraction 1), so one block of all units always predicts fastest (more blocks
# only add caching passes). A run that re-profiles after a kill must make the same plan.
PROFILED = {
    "config": {"method": "neuroflux", "seed": 3, "threads": 1,
               "model": {"name": "simplecnn", "width": 0.25},
               "data": dict(SYNTHETIC, train_size=2000),
               # Batches up to 128: the profiler measures 8, 32 and 128, long enough to kill in.
               "train": {"epochs": 2, "batch_size": 128, "max_batch_size": 128},
               "neuroflux": {"progressive_exit": False, "aux": "fixed", "aux_width": 16,
                             "unit_modes": "plain", "shallow_epoch_fraction": 1.0}},
    "pin_plan": False,
    "same_plan": True,
    "offload_budget": None,
    "events": [("config.json", exists("config.json")),
               ("profile.json", exists("profile.json")),
               ("checkpoint 1", checkpoint_step(1)),
               ("report.json", exists("report.json"))],
}

# Backprop under offloading: a budget of 80% of plain backprop's peak (measured in prepare())
# makes the schedule recompute the first units and offload a boundary's input to a mapped file.
# The schedule is chosen from measured times again on resume; all schedules give the same numbers.
OFFLOAD = {
    "config": {"method": "backprop", "seed": 3, "threads": 1,
               "model": {"name": "resnet18", "width": 0.125},
               "data": dict(SYNTHETIC, train_size=1000),
               "train": {"epochs": 3, "batch_size": 16}},
    "pin_plan": False,
    "same_plan": False,
    "offload_budget": 0.8,
    "events": [("config.json", exists("config.json")),
               ("schedule chosen", log_has("with memory.strategy offload at batch")),
               ("checkpoint 1", checkpoint_step(1)),
               ("checkpoint 2", checkpoint_step(2)),
               ("checkpoint 3", checkpoint_step(3)),
               ("report.json", exists("report.json"))],
}

SCENARIOS = {"pinned": PINNED, "profiled": PROFILED, "offload": OFFLOAD}

# (scenario, phase, the interval's first event, fraction of the interval). Ordered so that the
# first N points spread over the phases; the CI set is marked.
POINTS = [
    ("profiled", "profiling and planning", "config.json", 0.5, "ci"),
    ("pinned", "cache writing (block 1)", "block 1 caching", 0.5, "ci"),
    ("pinned", "export (test evaluation, model.pt, report)", "checkpoint 4", 0.5, "ci"),
    ("offload", "training (epoch 2)", "checkpoint 1", 0.5, "ci"),
    ("pinned", "training (block 0, before any checkpoint)", "config.json", 0.5, ""),
    ("offload", "batch check and schedule profiling", "config.json", 0.5, ""),
    ("pinned", "cache writing (block 0, before any checkpoint)", "block 0 caching", 0.5, ""),
    ("profiled", "training (the one block, just planned)", "profile.json", 0.3, ""),
    ("pinned", "training (block 1, cache 0 reopened)", "checkpoint 1", 0.5, ""),
    ("offload", "test evaluation and export", "checkpoint 3", 0.5, ""),
    ("pinned", "training (block 3, the last)", "checkpoint 3", 0.5, ""),
    ("offload", "training (epoch 1, offloading)", "schedule chosen", 0.5, ""),
    ("profiled", "export", "checkpoint 1", 0.5, ""),
]


# ---- running -------------------------------------------------------------------------------

class Runner:
    def __init__(self, binary):
        self.binary = binary
        self.env = dict(os.environ)
        self.env.pop("NEUROFLUX_QUIET", None)   # the offload scenario waits for a log line
        self.env["OMP_NUM_THREADS"] = "1"

    def command(self, config, out, resume=False):
        return [self.binary, "train", "--config", config, "--out", out] + (
            ["--resume"] if resume else [])

    def run(self, config, out, resume=False):
        log = out + (".resume.log" if resume else ".log")
        with open(log, "w") as f:
            rc = subprocess.call(self.command(config, out, resume), stdout=f,
                                 stderr=subprocess.STDOUT, env=self.env)
        return rc, log

    def timed_reference(self, scenario, config, out):
        """The uninterrupted run, with the time each event was first seen."""
        log = out + ".log"
        events = scenario["events"]
        seen = {}
        start = time.monotonic()
        with open(log, "w") as f:
            proc = subprocess.Popen(self.command(config, out), stdout=f,
                                    stderr=subprocess.STDOUT, env=self.env)
            while True:
                done = proc.poll() is not None
                now = time.monotonic() - start
                for name, event in events:
                    if name not in seen and event(out, log):
                        seen[name] = now
                if done:
                    break
                time.sleep(POLL_SECONDS)
        if proc.returncode != 0:
            raise Failure(f"reference run exited {proc.returncode}", log)
        missing = [name for name, _ in events if name not in seen]
        if missing:
            raise Failure(f"reference run never showed {missing}", log)
        return seen, time.monotonic() - start

    def kill_at(self, scenario, config, out, first, wait_seconds):
        """Starts a run, waits for event `first` plus `wait_seconds`, SIGKILLs it. Returns the
        events seen on disk after the kill, the run's exit code (negative: the signal) and its
        log."""
        log = out + ".log"
        events = dict(scenario["events"])
        with open(log, "w") as f:
            proc = subprocess.Popen(self.command(config, out), stdout=f,
                                    stderr=subprocess.STDOUT, env=self.env)
            deadline = None
            while proc.poll() is None:
                if deadline is None and events[first](out, log):
                    deadline = time.monotonic() + wait_seconds
                if deadline is not None and time.monotonic() >= deadline:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(POLL_SECONDS)
            proc.wait()
        return {name for name, event in scenario["events"] if event(out, log)}, proc.returncode, log


class Failure(Exception):
    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


def outcome(out):
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    history = [{k: v for k, v in entry.items() if not any(t in k for t in TIMING_KEYS)}
               for entry in report["history"]]
    final = report["final"]
    return {"history": history, "exit_unit": final["exit_unit"],
            "val_accuracy": final["val_accuracy"], "test_accuracy": final["test_accuracy"]}


def plan_blocks(out):
    """The plan a run followed, without its predictions (those come from timings)."""
    with open(os.path.join(out, "report.json")) as f:
        plan = json.load(f)["plan"]
    return [{k: v for k, v in b.items() if "predicted" not in k} for b in plan["blocks"]], \
        plan["heads"]


def leftovers(out):
    return [os.path.relpath(p, out) for p in glob.glob(os.path.join(out, "**", "*.tmp-*"),
                                                      recursive=True)]


def prepare(runner, name, scenario, work):
    """Writes the scenario's config (and pinned plan); returns the config's path."""
    config = json.loads(json.dumps(scenario["config"]))
    path = os.path.join(work, name + ".json")
    if scenario["offload_budget"]:
        probe = dict(config, train=dict(config["train"], epochs=1),
                     data=dict(config["data"], train_size=200))
        with open(path, "w") as f:
            json.dump(probe, f)
        rc, log = runner.run(path, os.path.join(work, name + "-peak"))
        if rc != 0:
            raise Failure(f"plain backprop run for the budget exited {rc}", log)
        with open(os.path.join(work, name + "-peak", "report.json")) as f:
            peak = json.load(f)["peak_memory_bytes"]
        config["memory"] = {"strategy": "offload",
                            "budget": int(peak * scenario["offload_budget"]),
                            "offload_dir": os.path.join(work, "offload")}
        os.makedirs(config["memory"]["offload_dir"], exist_ok=True)
    if scenario["pin_plan"]:
        plan = os.path.join(work, name + "-plan.json")
        with open(path, "w") as f:
            json.dump(config, f)
        rc = subprocess.call([runner.binary, "plan", "--config", path, "--save", plan],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=runner.env)
        if rc != 0:
            raise Failure(f"neuroflux plan exited {rc}")
        with open(plan) as f:
            saved = json.load(f)
        saved["blocks"] = [{"units": [u, u], "batch_size": 16, "epochs": 1, "lr": 0.05,
                            "cache_batch_size": 64, "unit_modes": ["plain"],
                            "predicted_peak_bytes": 0, "predicted_seconds": 0}
                           for u in range(len(saved["heads"]))]
        with open(plan, "w") as f:
            json.dump(saved, f)
        config["neuroflux"]["plan"] = plan
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def check_point(runner, scenario_name, scenario, config, reference, timing, point, work):
    _, phase, first, fraction, _ = point
    names = [name for name, _ in scenario["events"]]
    last = names[names.index(first) + 1]
    interval = timing[last] - timing[first]
    tag = f"{scenario_name} / {phase}"
    # A busy machine runs the killed run slower or faster than the reference: a kill that came
    # too late is tried earlier in the interval, at last as soon as its first event shows.
    for attempt, fraction in enumerate([fraction, fraction / 4, 0, 0, 0]):
        out = os.path.join(work, f"{scenario_name}-{names.index(first)}-{attempt}")
        seen, rc, log = runner.kill_at(scenario, config, out, first, fraction * interval)
        if first in seen and last not in seen and rc == -signal.SIGKILL:
            break
        what = f"the run ended (exit {rc})" if rc >= 0 else f"the kill came after '{last}'"
        print(f"  {tag}: {what} (attempt {attempt + 1}); earlier now", flush=True)
    else:
        raise Failure(f"{tag}: no kill landed between '{first}' and '{last}'", log)
    state = ", ".join(name for name in names if name in seen)
    rc, log = runner.run(config, out, resume=True)
    if rc != 0:
        raise Failure(f"{tag}: --resume exited {rc}", log)
    got = outcome(out)
    if scenario["same_plan"] and plan_blocks(out) != plan_blocks(reference):
        raise Failure(f"{tag}: the resumed run planned differently: {plan_blocks(out)} vs "
                      f"{plan_blocks(reference)}", log)
    want = outcome(reference)
    for key in ("history", "exit_unit", "val_accuracy", "test_accuracy"):
        if got[key] != want[key]:
            raise Failure(f"{tag}: resumed {key} differs:\n  resumed       {got[key]}\n"
                          f"  uninterrupted {want[key]}", log)
    left = leftovers(out)
    if left:
        raise Failure(f"{tag}: temporary files left behind after the resume: {left}", log)
    print(f"ok: {tag}: killed {fraction * interval:.2f} s after '{first}' (seen: {state}); "
          f"resumed to the same {len(got['history'])} history entries, exit unit "
          f"{got['exit_unit']}, test accuracy {got['test_accuracy']}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--points", default="ci", help="ci | all | N (default ci)")
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args()
    if args.points == "ci":
        points = [p for p in POINTS if p[4] == "ci"]
    elif args.points == "all":
        points = POINTS
    else:
        points = POINTS[:int(args.points)]
    work = args.keep or tempfile.mkdtemp(prefix="neuroflux-kill-")
    os.makedirs(work, exist_ok=True)
    runner = Runner(os.path.realpath(args.binary))
    failed = 0
    start = time.monotonic()
    try:
        for name, scenario in SCENARIOS.items():
            mine = [p for p in points if p[0] == name]
            if not mine:
                continue
            try:
                config = prepare(runner, name, scenario, work)
                reference = os.path.join(work, name + "-reference")
                timing, seconds = runner.timed_reference(scenario, config, reference)
                print(f"{name}: uninterrupted run {seconds:.1f} s; events at " + ", ".join(
                    f"{k} {v:.2f} s" for k, v in timing.items() if k != "start"), flush=True)
                if scenario["offload_budget"]:
                    with open(os.path.join(reference, "report.json")) as f:
                        used = json.load(f)["memory_strategy"]
                    # Chosen from measured times: a schedule without offloading is possible,
                    # and said, not failed (every schedule must still resume to the same run).
                    print(f"  schedule {used['schedule']['describe']}, "
                          f"{used['offloaded_bytes']} bytes offloaded"
                          + ("" if used["offloaded_bytes"] else " (no offloading this time)"),
                          flush=True)
            except Failure as e:
                print(f"FAIL: {name}: {e}" + (f" (log: {e.log})" if e.log else ""))
                failed += len(mine)
                continue
            for point in mine:
                try:
                    check_point(runner, name, scenario, config, reference, timing, point, work)
                except Failure as e:
                    print(f"FAIL: {e}" + (f" (log: {e.log})" if e.log else ""), flush=True)
                    if e.log and os.path.exists(e.log):
                        with open(e.log, errors="replace") as f:
                            print("  " + "  ".join(f.readlines()[-5:]))
                    failed += 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{len(points) - failed}/{len(points)} kill points resumed to the uninterrupted run "
          f"({time.monotonic() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
