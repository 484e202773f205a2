#!/usr/bin/env python3
"""Plots of the experiment results (results/<name>/summary.json from scripts/experiments.sh):
validation accuracy against training seconds per method, peak memory against the budget,
speed-up against the budget, and parameters of the exported models. PNGs go beside the data.
Every method has one colour in every figure and panel (METHOD_COLOURS); a budget panel names the
methods that did not fit it, and says so when nothing did.

  python3 scripts/plot.py [results/NAME ...]"""
import glob
import os
import sys
import zlib

try:
    import matplotlib
except ImportError:
    # matplotlib comes from Debian (python3-matplotlib, installed by scripts/install-deps.sh);
    # another python3 first on PATH (pyenv, a venv) does not see it: use Debian's.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != "/usr/bin/python3":
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("plot.py: matplotlib is missing; run scripts/install-deps.sh (python3-matplotlib)")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from result_files import load  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024.0 * 1024.0

# One colour per method in every figure and every panel, whichever methods a grid ran, so a
# legend read once holds for all of them. The first four are the colours the grids were first
# drawn with; target lines are grey, so no method is.
METHOD_COLOURS = {
    "backprop": "#1f77b4",                  # blue
    "backprop+checkpoint": "#ff7f0e",       # orange
    "local": "#2ca02c",                     # green
    "neuroflux": "#d62728",                 # red
    "backprop+checkpoint_sqrt": "#9467bd",  # purple
    "backprop+offload": "#8c564b",          # brown
    "neuroflux+deep": "#e377c2",            # pink
    "neuroflux+fixed": "#17becf",           # cyan
    "neuroflux+adaptive": "#ff9896",        # light red
    "neuroflux+bitmap": "#bcbd22",          # olive
    "neuroflux+stage": "#c5b0d5",           # light purple
    "local+deep": "#98df8a",                # light green
}
# Any other method (variants combine freely: local+deep+stage+sim) takes a colour from these by a
# checksum of its name: the same in every figure and every run, though two may share one.
SPARE_COLOURS = ["#aec7e8", "#ffbb78", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
                 "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3"]
BASE_ORDER = ["backprop", "local", "neuroflux"]


def colour_of(method):
    """The method's colour, the same in every figure."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return SPARE_COLOURS[zlib.crc32(method.encode()) % len(SPARE_COLOURS)]


def method_order(method):
    """Sort key: backprop, local, neuroflux, each followed by its variants (by name)."""
    base, _, variants = method.partition("+")
    rank = BASE_ORDER.index(base) if base in BASE_ORDER else len(BASE_ORDER)
    return (rank, base, variants != "", variants)


def ordered(methods):
    return sorted(set(methods), key=method_order)


def outcome(cell):
    """(methods over the budget (exit 4), methods that failed otherwise) of a grid cell."""
    no_fit, failed = [], []
    for r in cell["bench"]["rows"]:
        code = r.get("exit_code", 0)
        if code == 4:
            no_fit.append(r["method"])
        elif code != 0 or "error" in r:
            failed.append(r["method"])
    return ordered(no_fit), ordered(failed)


def empty_panel(ax, text):
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="dimgrey",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def curves_figure(cells, curves):
    """Best validation accuracy so far against training seconds, one panel per budget."""
    fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4), squeeze=False)
    for ax, cell, cell_curve in zip(axes[0], cells, curves):
        for method in ordered(cell_curve):
            best, xs, ys = 0.0, [], []
            for h in cell_curve[method]:
                best = max(best, h["val_accuracy"])
                xs.append(h["seconds"])
                ys.append(best)
            ax.plot(xs, ys, marker="o", label=method, color=colour_of(method))
        no_fit, failed = outcome(cell)
        title = f"budget {cell['budget_bytes'] / MIB:.1f} MiB ({cell['fraction']} x bp@128)"
        if no_fit:
            title += "\nno fit: " + ", ".join(no_fit)
        if failed:
            title += "\nfailed: " + ", ".join(failed)
        ax.set_title(title)
        ax.set_xlabel("training seconds")
        ax.set_ylabel("best validation accuracy so far")
        if cell_curve:
            ax.axhline(cell["bench"]["target_accuracy"], color="grey", linestyle="--", linewidth=1)
            ax.legend()
        elif no_fit and len(no_fit) == len(cell["bench"]["rows"]):
            empty_panel(ax, "nothing fits this budget")
        else:
            empty_panel(ax, "no validation curves kept")
    fig.tight_layout()
    return fig


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_experiment(out):
    summary = load(os.path.join(out, "summary.json"))
    cells = sorted(summary["cells"], key=lambda c: c["fraction"])
    if not cells:
        return []
    written = []

    methods = ordered(r["method"] for c in cells for r in c["bench"]["rows"])
    # Curves come from summary.json only; scripts/experiments.py copies them out of the run
    # folders (re-running it on a finished grid fills them in for an older summary).
    curves = [cell.get("histories", {}) for cell in cells]
    if any(curves):
        written.append(save(curves_figure(cells, curves), out, "accuracy_vs_time.png"))
    else:
        # Empty axes would only overwrite an older PNG that had the curves.
        print(f"{out}: summary.json has no validation curves (re-run scripts/experiments.sh "
              "while the run folders exist); accuracy_vs_time.png not drawn", file=sys.stderr)

    budgets = [c["budget_bytes"] / MIB for c in cells]

    def series(key):
        out_series = {}
        for m in methods:
            ys = []
            for c in cells:
                row = next((r for r in c["bench"]["rows"] if r["method"] == m), None)
                ys.append(row.get(key) if row else None)
            out_series[m] = ys
        return out_series

    for key, ylabel, name, diagonal in [
        ("peak_memory_bytes", "measured peak (MiB)", "peak_vs_budget.png", True),
        ("speedup_vs_backprop", "time-to-target speed-up vs backprop", "speedup_vs_budget.png", False),
    ]:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for m, ys in series(key).items():
            pts = [(b, (y / MIB if diagonal else y)) for b, y in zip(budgets, ys) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m,
                        color=colour_of(m))
                drawn = True
        if diagonal:
            ax.plot(budgets, budgets, color="grey", linestyle="--", linewidth=1, label="budget")
        ax.set_xscale("log")
        ax.set_xlabel("budget (MiB)")
        ax.set_ylabel(ylabel)
        if drawn or diagonal:
            ax.legend()
        if not drawn:
            ax.text(0.5, 0.5, "no method reached the target" if not diagonal else
                    "nothing fits any budget", transform=ax.transAxes, ha="center",
                    va="center", color="dimgrey")
        fig.tight_layout()
        written.append(save(fig, out, name))

    # Parameters of the exported models at the loosest budget.
    loosest = cells[-1]
    rows = sorted((r for r in loosest["bench"]["rows"] if "params" in r),
                  key=lambda r: method_order(r["method"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([r["method"] for r in rows], [r["params"] for r in rows],
           color=[colour_of(r["method"]) for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("parameters of the exported model")
    for i, r in enumerate(rows):
        ax.text(i, r["params"], f"{r['test_accuracy']:.3f}", ha="center", va="bottom")
    ax.set_title("exported model size (label: test accuracy)")
    fig.tight_layout()
    written.append(save(fig, out, "exported_params.png"))
    return written


def main():
    dirs = sys.argv[1:] or sorted(os.path.dirname(p) for p in
                                  glob.glob(os.path.join(ROOT, "results", "*", "summary.json")))
    if not dirs:
        sys.exit("no results/*/summary.json: run scripts/experiments.sh first")
    for d in dirs:
        for path in plot_experiment(d):
            print(path)


if __name__ == "__main__":
    main()
