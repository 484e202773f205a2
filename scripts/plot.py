#!/usr/bin/env python3
"""Plots of the experiment results (results/<name>/summary.json from scripts/experiments.sh):
validation accuracy against training seconds per method, peak memory against the budget,
speed-up against the budget, and parameters of the exported models. PNGs go beside the data.

  python3 scripts/plot.py [results/NAME ...]"""
import glob
import os
import sys

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


def plot_curves(out, cells, curves, color):
    """Best validation accuracy so far against training seconds, one panel per budget."""
    mib = 1024.0 * 1024.0
    fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4), squeeze=False)
    for ax, cell, cell_curve in zip(axes[0], cells, curves):
        for method, hist in cell_curve.items():
            best, xs, ys = 0.0, [], []
            for h in hist:
                best = max(best, h["val_accuracy"])
                xs.append(h["seconds"])
                ys.append(best)
            ax.plot(xs, ys, marker="o", label=method, color=color.get(method))
        ax.axhline(cell["bench"]["target_accuracy"], color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"budget {cell['budget_bytes'] / mib:.1f} MiB ({cell['fraction']} x bp@128)")
        ax.set_xlabel("training seconds")
        ax.set_ylabel("best validation accuracy so far")
        if cell_curve:
            ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "accuracy_vs_time.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_experiment(out):
    summary = load(os.path.join(out, "summary.json"))
    cells = sorted(summary["cells"], key=lambda c: c["fraction"])
    if not cells:
        return []
    written = []
    mib = 1024.0 * 1024.0

    methods = sorted({r["method"] for c in cells for r in c["bench"]["rows"]})
    color = {m: f"C{i}" for i, m in enumerate(methods)}  # one colour per method in every panel
    # Curves come from summary.json only; scripts/experiments.py copies them out of the run
    # folders (re-running it on a finished grid fills them in for an older summary).
    curves = [cell.get("histories", {}) for cell in cells]
    if any(curves):
        written.append(plot_curves(out, cells, curves, color))
    else:
        # Empty axes would only overwrite an older PNG that had the curves.
        print(f"{out}: summary.json has no validation curves (re-run scripts/experiments.sh "
              "while the run folders exist); accuracy_vs_time.png not drawn", file=sys.stderr)

    budgets = [c["budget_bytes"] / mib for c in cells]

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
        for m, ys in series(key).items():
            pts = [(b, (y / mib if diagonal else y)) for b, y in zip(budgets, ys) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m,
                        color=color[m])
        if diagonal:
            ax.plot(budgets, budgets, color="grey", linestyle="--", linewidth=1, label="budget")
        ax.set_xscale("log")
        ax.set_xlabel("budget (MiB)")
        ax.set_ylabel(ylabel)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    # Parameters of the exported models at the loosest budget.
    loosest = cells[-1]
    rows = [r for r in loosest["bench"]["rows"] if "params" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([r["method"] for r in rows], [r["params"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("parameters of the exported model")
    for i, r in enumerate(rows):
        ax.text(i, r["params"], f"{r['test_accuracy']:.3f}", ha="center", va="bottom")
    ax.set_title("exported model size (label: test accuracy)")
    fig.tight_layout()
    path = os.path.join(out, "exported_params.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
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
