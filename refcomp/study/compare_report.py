"""Outputs of ``refcomp study --compare``: ``compare.csv`` (one table), ``compare.json``,
``compare.md`` (the table, each method's Pareto front and the winners by ratio) and
``compare.png`` (accuracy against tau, log axis, one curve per method, Pareto
fronts marked).  Every file is written atomically."""

import csv
import io
import json
import os

from ..io._atomic import atomic_directory, atomic_path
from .compare import ACCOUNTING, CAPPED, THRESHOLDS, fronts, winners

__all__ = ["write_compare", "compare_markdown", "FIELDS"]

FIELDS = ["model", "method", "label", "value", "accuracy", "tau", "kl", "size_bits",
          "pareto"]


def _write(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)


def _on_front(result):
    front = fronts(result)
    return {id(r) for rows in front.values() for r in rows}


def compare_markdown(result):
    """The Markdown report (a str)."""
    on = _on_front(result)
    out = ["# Comparative study (seed 001, first phase): accuracy against tau, no retraining",
           ""]
    for k, b in result["models"].items():
        out.append(f"- `{k}`: float accuracy {100 * b['accuracy']:.2f} %, "
                   f"{b['bits']} bits of float32 parameters")
    out += ["", "## Winners: the most accurate run with tau >= r", "",
            "| model | " + " | ".join(f"tau >= {t}" for t in THRESHOLDS) + " |",
            "|---|" + "---|" * len(THRESHOLDS)]
    for k, row in winners(result).items():
        cells = [("-" if r is None else f"{r['label']} {100 * r['accuracy']:.1f} % "
                  f"(tau {r['tau']:.1f})") for r in row.values()]
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    out += ["", "## Every run (`*` = on the method's Pareto front)", "",
            "| model | method | value | accuracy | tau | KL (nats) | bits |",
            "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        star = " *" if id(r) in on else ""
        out.append(f"| {r['model']} | {r['label']} ({r['method']}) | {r['value']} | "
                   f"{100 * r['accuracy']:.2f} %{star} | {r['tau']:.2f} | {r['kl']:.4f} | "
                   f"{r['size_bits']} |")
    capped = [m for m in result["methods"] if m in CAPPED]
    if capped:
        out += ["", "Methods that cannot reach tau 64 by construction: " + "; ".join(
            f"{m}: {CAPPED[m]}" for m in capped) + "."]
    extra = [m for m in result["methods"] if m in ACCOUNTING]
    if extra:
        out += ["", "Accounting of the comparison-specific runs: " + "; ".join(
            f"{m}: {ACCOUNTING[m]}" for m in extra) + ".  The others count as in "
            "`refcomp study` (`runs.json`, `accounting`)."]
    return "\n".join(out) + "\n"


def _csv(result):
    on = _on_front(result)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for r in result["runs"]:
        w.writerow([r["model"], r["method"], r["label"], r["value"], repr(r["accuracy"]),
                    repr(r["tau"]), repr(r["kl"]), r["size_bits"], int(id(r) in on)])
    return buf.getvalue()


def _plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    front = fronts(result)
    models = list(result["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(6.4 * len(models), 4.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, k in zip(axes[0], models):
        for i, m in enumerate(result["methods"]):
            rows = sorted((r for r in result["runs"] if r["model"] == k and r["method"] == m),
                          key=lambda r: r["tau"])
            if not rows:
                continue
            # tab10 has 10 colours: the methods after the tenth reuse them, dashed
            c, ls = cmap(i % 10), "-" if i < 10 else "--"
            ax.plot([r["tau"] for r in rows], [100 * r["accuracy"] for r in rows], color=c,
                    lw=0.8, ls=ls, alpha=0.45, marker="o", ms=3, mfc="none")
            fr = front.get((k, m), [])
            ax.plot([r["tau"] for r in fr], [100 * r["accuracy"] for r in fr], color=c, lw=1.8,
                    ls=ls, marker="o", ms=5, label=f"{rows[0]['label']} ({m})")
        ax.axhline(100 * result["models"][k]["accuracy"], color="k", ls="--", lw=0.8,
                   label="float")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("compression ratio tau (seed 002 eq. 19), log scale")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{k}: whole network, no retraining")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left", handlelength=3.5)
    fig.suptitle("Comparative study: thick lines and filled markers = each method's "
                 "Pareto front", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def write_compare(result, out_dir, *, plots=True):
    """Write compare.csv, compare.json, compare.md and (with matplotlib) compare.png;
    returns the names written.  Written through a staging directory with a completion
    marker, as refcomp.study.report.write_report."""
    with atomic_directory(out_dir) as stage:
        return _write_compare(result, stage, plots=plots)


def _write_compare(result, out_dir, *, plots):
    _write(os.path.join(out_dir, "compare.csv"), _csv(result))
    _write(os.path.join(out_dir, "compare.json"),
           json.dumps({"models": result["models"], "methods": result["methods"],
                       "sweeps": result["sweeps"], "runs": result["runs"],
                       "winners": {k: {str(t): r for t, r in v.items()}
                                   for k, v in winners(result).items()}},
                      indent=1, sort_keys=True) + "\n")
    _write(os.path.join(out_dir, "compare.md"), compare_markdown(result))
    files = ["compare.csv", "compare.json", "compare.md"]
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return files
        _plot(result, os.path.join(out_dir, "compare.png"))
        files.append("compare.png")
    return files
