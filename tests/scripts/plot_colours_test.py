"""scripts/plot.py draws every method in one colour in every panel and every figure, and a budget
panel where nothing fits says so instead of showing an empty legend.
Usage: plot_colours_test.py SOURCE_DIR   (run with a python3 that has matplotlib)"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(sys.argv[1], "scripts"))
import plot  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message)


def history(accuracies):
    return [{"val_accuracy": a, "seconds": 10.0 * (i + 1)} for i, a in enumerate(accuracies)]


def cell(fraction, rows, histories):
    return {"fraction": fraction, "budget_bytes": int(fraction * 64 * 1024 * 1024),
            "bench": {"target_accuracy": 0.8, "rows": rows}, "histories": histories}


def ok(method, params=1000):
    return {"method": method, "exit_code": 0, "peak_memory_bytes": 1 << 20,
            "speedup_vs_backprop": 1.5, "params": params, "test_accuracy": 0.85}


def no_fit(method):
    return {"method": method, "exit_code": 4, "error": "run failed"}


# Methods come and go between panels: nothing fits at 0.08, only NeuroFlux and a variant at 0.2.
CELLS = [
    cell(0.08, [no_fit("backprop"), no_fit("local"), no_fit("neuroflux")], {}),
    cell(0.2, [no_fit("backprop"), no_fit("local"), ok("neuroflux"), ok("neuroflux+deep")],
         {"neuroflux": history([0.5, 0.7]), "neuroflux+deep": history([0.6, 0.75])}),
    cell(1.0, [ok("backprop"), ok("local"), ok("neuroflux"), ok("neuroflux+deep")],
         {m: history([0.4, 0.8]) for m in ["neuroflux+deep", "local", "backprop", "neuroflux"]}),
]
# Another grid with fewer methods: the colours must not depend on which methods a grid ran.
OTHER = [cell(1.0, [ok("neuroflux"), ok("local+deep+stage")],
              {"neuroflux": history([0.5]), "local+deep+stage": history([0.5])})]


def method_lines(fig):
    """label -> [colour of each Line2D with that label, across every panel]."""
    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if isinstance(line, Line2D) and not line.get_label().startswith("_"):
                colours.setdefault(line.get_label(), []).append(to_hex(line.get_color()))
    return colours


def texts(ax):
    return [t.get_text() for t in ax.texts]


fig = plot.curves_figure(CELLS, [c["histories"] for c in CELLS])
other = plot.curves_figure(OTHER, [c["histories"] for c in OTHER])
lines, other_lines = method_lines(fig), method_lines(other)

check(sorted(lines) == ["backprop", "local", "neuroflux", "neuroflux+deep"],
      f"labelled lines: {sorted(lines)}")
check(len(lines.get("neuroflux", [])) == 2, "neuroflux is drawn in two panels")
for label, colours in list(lines.items()) + list(other_lines.items()):
    check(len(set(colours)) == 1, f"{label} has one colour across panels, got {colours}")
    check(colours[0] == to_hex(plot.colour_of(label)),
          f"{label} is drawn in {colours[0]}, its colour is {plot.colour_of(label)}")
check(other_lines["neuroflux"][0] == lines["neuroflux"][0],
      "neuroflux has the same colour in a grid with other methods")
distinct = {lines[m][0] for m in lines}
check(len(distinct) == len(lines), f"the methods of one panel have distinct colours: {lines}")
check(plot.colour_of("local+deep+stage") == plot.colour_of("local+deep+stage"),
      "an unlisted variant's colour is stable")

# The legend lists methods in the fixed order, whatever order the histories came in.
legend = fig.axes[2].get_legend()
check(legend is not None and [t.get_text() for t in legend.get_texts()] ==
      ["backprop", "local", "neuroflux", "neuroflux+deep"],
      f"legend order at 1.0: {legend and [t.get_text() for t in legend.get_texts()]}")

empty = fig.axes[0]
check(empty.get_legend() is None, "the panel where nothing fits has no (empty) legend")
check(not empty.get_lines(), "the panel where nothing fits has no lines")
check(any("nothing fits this budget" in t for t in texts(empty)),
      f"the panel where nothing fits says so: {texts(empty)}")
check("no fit: backprop, local, neuroflux" in empty.get_title(),
      f"the empty panel names the methods that did not fit: {empty.get_title()!r}")
check("no fit: backprop, local" in fig.axes[1].get_title(),
      f"a partial panel names the methods that did not fit: {fig.axes[1].get_title()!r}")
check(not any("nothing fits" in t for t in texts(fig.axes[1])),
      "a panel with curves does not say nothing fits")

# The whole experiment: every figure is written, bars in the methods' colours.
with tempfile.TemporaryDirectory() as out:
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"cells": CELLS}, f)
    written = sorted(os.path.basename(p) for p in plot.plot_experiment(out))
    check(written == ["accuracy_vs_time.png", "exported_params.png", "peak_vs_budget.png",
                      "speedup_vs_budget.png"], f"figures written: {written}")
    check(all(os.path.getsize(os.path.join(out, n)) > 0 for n in written), "figures not empty")

if failures:
    sys.exit(f"plot colours: {len(failures)} failure(s)")
print("plot colours: ok")
