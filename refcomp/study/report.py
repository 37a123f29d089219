"""Study outputs: CSV, JSON, Markdown tables shaped like Tables 4-5 of seed
002, PNG figures shaped like its Figures 2-5 plus the Pareto front."""

import csv
import io
import json
import os

from ..io._atomic import atomic_directory, atomic_path
from .run import KL_COLUMNS, pareto_front

__all__ = ["write_report", "summary_text", "select_best", "FIELDS"]

FIELDS = ["experiment", "method", "label", "unit", "value", "config", "accuracy", "mse", "kl",
          "size_bits", "tau_i", "tau"]


def _kl(result):
    """(column, unit) of the runs' KL: ("kl", "nats") by default, ("kl_bits", "bits")."""
    unit = result["settings"].get("kl_unit", "nats")
    return KL_COLUMNS[unit], unit


def _fields(result):
    """The CSV columns: FIELDS with the KL column named for its unit."""
    col = _kl(result)[0]
    return [col if f == "kl" else f for f in FIELDS]


def _write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)


def _fmt_size(bits):
    b = bits / 8
    for unit in ("B", "KB", "MB"):
        if b < 1000 or unit == "MB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.2f} {unit}"
        b /= 1000


def select_best(rows, baseline_acc, drop):
    """(best accuracy row, best trade-off row).

    Best accuracy: highest accuracy, ties to higher tau then first row.
    Best trade-off: highest tau among rows with accuracy >= baseline - drop
    (ties: higher accuracy, then first); None if no row qualifies.
    """
    if not rows:
        return None, None
    best_acc = max(enumerate(rows), key=lambda t: (t[1]["accuracy"], t[1]["tau"], -t[0]))[1]
    ok = [(i, r) for i, r in enumerate(rows) if r["accuracy"] >= baseline_acc - drop - 1e-12]
    trade = max(ok, key=lambda t: (t[1]["tau"], t[1]["accuracy"], -t[0]))[1] if ok else None
    return best_acc, trade


def tables_markdown(result):
    base = result["baseline"]["accuracy"]
    drop = result["settings"]["tradeoff_drop"]
    units = [u["label"] for u in result["units"]]
    runs = result["runs"]
    out = [f"# Study of `{result['model']}` ({result['n_test']} test samples)", "",
           f"Float baseline accuracy: {100 * base:.2f} %. Trade-off rule: highest tau with "
           f"accuracy >= baseline - {100 * drop:.1f} points.", ""]
    fixed = result["settings"].get("method_params")
    if fixed:
        out += ["Fixed method parameters: " + "; ".join(
            f"{m}: " + ", ".join(f"{k}={v}" for k, v in kv.items()) for m, kv in fixed.items()),
            ""]
    per = [r for r in runs if r["experiment"] == "per_layer"]
    if per:
        out += ["## Per-layer quantization (shape of Table 4)", "",
                f"| Layer | Method | ACC | {_x_label(result).capitalize()} | Size | tau_i | tau |",
                "|---|---|---|---|---|---|---|"]
        for lab in units:
            for m in result["settings"]["methods"]:
                rows = [r for r in per if r["unit"] == lab and r["method"] == m]
                best, trade = select_best(rows, base, drop)
                r = trade or best
                if r:
                    out.append(f"| {lab} | {r['label']} | {100 * r['accuracy']:.2f} % | {r['value']} "
                               f"| {_fmt_size(r['size_bits'])} | {r['tau_i']:.2f} | {r['tau']:.4f} |")
        out.append("")
    whole = [r for r in runs if r["experiment"] == "whole"]
    if whole:
        out += ["## Whole network, one quantizer (data of Figure 5)", "",
                f"| Method | {_x_label(result).capitalize()} | ACC | MSE | KL ({_kl(result)[1]}) "
                "| tau |",
                "|---|---|---|---|---|---|"]
        for r in whole:
            out.append(f"| {r['label']} | {r['value']} | {100 * r['accuracy']:.2f} % | "
                       f"{r['mse']:.3e} | {r[_kl(result)[0]]:.3e} | {r['tau']:.2f} |")
        out.append("")
    adap = [r for r in runs if r["experiment"] == "adaptive"]
    if adap:
        mode = result["settings"]["adaptive_mode"]
        per = sorted({sum(r["method"] == m for r in adap) for m in {r["method"] for r in adap}})
        count = (f"{per[0]} assignments per method, {len(adap)} in all" if len(per) == 1
                 else f"{len(adap)} assignments")
        out += [f"## Adaptive {_x_label(result)} per layer (shape of Table 5; {mode} search, "
                f"{count})", "",
                "| Method | " + " | ".join(units) + " | ACC | tau | choice |",
                "|---|" + "---|" * len(units) + "---|---|---|"]
        for m in result["settings"]["methods"]:
            rows = [r for r in adap if r["method"] == m]
            best, trade = select_best(rows, base, drop)
            for r, what in ((best, "best accuracy"), (trade, "best trade-off")):
                if r:
                    out.append(f"| {r['label']} | " + " | ".join(r["config"].split("-")) +
                               f" | {100 * r['accuracy']:.2f} % | {r['tau']:.2f} | {what} |")
        out.append("")
    return "\n".join(out)


def seed004_markdown(s):
    """Seed 004's Tables 1 and 3 (Fernandez Brillet et al.) from ``result["seed004"]``."""
    rows = s["rows"]
    es = [str(r["energy"]) for r in rows]
    name = s["model"]
    out = [f"## PCA of the filters, shape of seed 004 Table 1 (`{name}`, every conv2d and "
           "dense layer)", "",
           "P: stored parameters of the whole network (biases and untouched layers "
           "included); G = P_orig / P; A: test accuracy; ER = (A_orig - A) / A_orig "
           "(signed: the paper prints negative values as 0.0).", "",
           "| Net | E (%) | Orig | " + " | ".join(es) + " |",
           "|---|---|---|" + "---|" * len(rows)]
    out.append(f"| {name} | P | {s['orig']['P']:,} | "
               + " | ".join(f"{r['P']:,}" for r in rows) + " |")
    out.append("| | G (x) | 1.00 | " + " | ".join(f"{r['G']:.2f}" for r in rows) + " |")
    out.append(f"| | A (%) | {100 * s['orig']['A']:.2f} | "
               + " | ".join(f"{100 * r['A']:.2f}" for r in rows) + " |")
    out.append("| | ER (%) | 0.0 | " + " | ".join(f"{r['ER']:.2f}" for r in rows) + " |")
    out.append("")
    if any(r["A_R"] is not None for r in rows):
        out += [f"## Coordinate refit, shape of seed 004 Table 3 (`{name}`)", "",
                "A-R: accuracy after the least-squares refit of the coordinates on the "
                "calibration split, layer by layer from the first (basis and mean fixed; "
                "refcomp.decompose.refit_coordinates).", "",
                "| Net | E (%) | " + " | ".join(es) + " |",
                "|---|---|" + "---|" * len(rows)]
        out.append(f"| {name} | P | " + " | ".join(f"{r['P']:,}" for r in rows) + " |")
        out.append("| | A (%) | " + " | ".join(f"{100 * r['A']:.2f}" for r in rows) + " |")
        out.append("| | A-R (%) | " + " | ".join(
            "-" if r["A_R"] is None else f"{100 * r['A_R']:.2f}" for r in rows) + " |")
        out.append("")
    return "\n".join(out)


def _seed004_plot(result, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["seed004"]
    rows = sorted(s["rows"], key=lambda r: r["G"])
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    ax.plot([r["G"] for r in rows], [100 * r["A"] for r in rows], marker="o",
            label="PCA (no refit)")
    if any(r["A_R"] is not None for r in rows):
        ax.plot([r["G"] for r in rows], [100 * r["A_R"] for r in rows], marker="s",
                label="PCA + coordinate refit")
    for r in rows:
        ax.annotate(f"{r['energy']}%", (r["G"], 100 * r["A"]), fontsize=7,
                    textcoords="offset points", xytext=(3, -9))
    ax.axhline(100 * s["orig"]["A"], color="k", ls="--", lw=0.8, label="original")
    ax.set_xlabel("G = P_orig / P")
    ax.set_ylabel("Accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"PCA with and without refit ({s['model']}; shape of seed 004 Fig. 4-5)")
    fig.tight_layout()
    name = "fig_seed004_accuracy_vs_gain.png"
    _save_fig(fig, os.path.join(out_dir, name))
    plt.close(fig)
    return [name]


def _x_label(result):
    params = sorted(set(result["settings"].get("params", {}).values())) or ["bits"]
    return " / ".join(params)


def summary_text(result):
    base = result["baseline"]["accuracy"]
    drop = result["settings"]["tradeoff_drop"]
    lines = [f"model {result['model']}: float accuracy {100 * base:.2f} % on "
             f"{result['n_test']} samples, {len(result['runs'])} runs"]
    params = result["settings"].get("params", {})
    for m in result["settings"]["methods"]:
        p = params.get(m, "bits")
        fmt = "{}b".format if p == "bits" else f"{p}={{}}".format
        rows = [r for r in result["runs"] if r["experiment"] == "adaptive" and r["method"] == m]
        best, trade = select_best(rows, base, drop)
        if best:
            lines.append(f"  {best['label']} adaptive: best accuracy {100 * best['accuracy']:.2f} % "
                         f"({p} {best['config']}, tau {best['tau']:.2f})" +
                         (f"; best trade-off {100 * trade['accuracy']:.2f} % at tau "
                          f"{trade['tau']:.2f} ({p} {trade['config']})" if trade else ""))
        whole = [r for r in result["runs"] if r["experiment"] == "whole" and r["method"] == m]
        if whole:
            lines.append(f"  {whole[0]['label']} whole network: " + ", ".join(
                f"{fmt(r['value'])} {100 * r['accuracy']:.1f}%" for r in whole))
    return "\n".join(lines)


def _csv_text(runs, fields=FIELDS):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in runs:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return buf.getvalue()


def _plots(result, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    units = [u["label"] for u in result["units"]]
    methods = result["settings"]["methods"]
    per = [r for r in result["runs"] if r["experiment"] == "per_layer"]
    kl_col, kl_unit = _kl(result)
    metric_names = {"accuracy": "Accuracy (%)", "mse": "MSE (eq. 14)",
                    kl_col: f"mean KL ({kl_unit})"}
    if per:
        # figure 4 keeps its file name (fig4_kl_per_layer.png) whatever the unit
        for fig_no, metric, stem in ((2, "accuracy", "accuracy"), (3, "mse", "mse"),
                                     (4, kl_col, "kl")):
            n = len(units)
            cols = min(n, 2 if n <= 4 else 3)
            rows_ = -(-n // cols)
            fig, axes = plt.subplots(rows_, cols, figsize=(4.2 * cols, 3.2 * rows_), squeeze=False)
            for k, lab in enumerate(units):
                ax = axes[k // cols][k % cols]
                for m in methods:
                    rs = [r for r in per if r["unit"] == lab and r["method"] == m]
                    ys = [100 * r[metric] if metric == "accuracy" else r[metric] for r in rs]
                    ax.plot([r["value"] for r in rs], ys, marker="o", label=rs[0]["label"] if rs else m)
                ax.set_title(lab)
                ax.set_xlabel(_x_label(result))
                ax.set_ylabel(metric_names[metric])
                if metric != "accuracy":
                    ax.set_yscale("log")
                ax.grid(alpha=0.3)
                ax.legend()
            for k in range(n, rows_ * cols):
                axes[k // cols][k % cols].axis("off")
            fig.suptitle(f"Per-layer quantization: {metric_names[metric]} ({result['model']})")
            fig.tight_layout()
            name = f"fig{fig_no}_{stem}_per_layer.png"
            _save_fig(fig, os.path.join(out_dir, name))
            plt.close(fig)
            files.append(name)
    whole = [r for r in result["runs"] if r["experiment"] == "whole"]
    if whole:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for ax, metric in zip(axes, ("accuracy", kl_col, "mse")):
            for m in methods:
                rs = [r for r in whole if r["method"] == m]
                ax.plot([r["value"] for r in rs],
                        [100 * r[metric] if metric == "accuracy" else r[metric] for r in rs],
                        marker="o", label=rs[0]["label"] if rs else m)
            ax.set_xlabel(_x_label(result))
            ax.set_ylabel(metric_names[metric])
            if metric != "accuracy":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(f"Whole network, one quantizer ({result['model']})")
        fig.tight_layout()
        _save_fig(fig, os.path.join(out_dir, "fig5_whole_network.png"))
        plt.close(fig)
        files.append("fig5_whole_network.png")
    adap = [r for r in result["runs"] if r["experiment"] == "adaptive"]
    if adap:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for m in methods:
            rs = [r for r in adap if r["method"] == m]
            if not rs:
                continue
            ax.scatter([r["tau"] for r in rs], [100 * r["accuracy"] for r in rs], s=8, alpha=0.35,
                       label=f"{rs[0]['label']} assignments")
            front = pareto_front(rs)
            ax.plot([r["tau"] for r in front], [100 * r["accuracy"] for r in front], marker="o",
                    label=f"{rs[0]['label']} Pareto front")
        ax.axhline(100 * result["baseline"]["accuracy"], color="k", ls="--", lw=0.8,
                   label="float baseline")
        ax.set_xlabel("compression ratio tau (eq. 19)")
        ax.set_ylabel("Accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"Adaptive bits per layer ({result['model']})")
        fig.tight_layout()
        _save_fig(fig, os.path.join(out_dir, "pareto.png"))
        plt.close(fig)
        files.append("pareto.png")
    return files


def _save_fig(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def write_report(result, out_dir, *, plots=True):
    """Write runs.csv, runs.json, tables.md and (if matplotlib is present) PNGs.

    The files are written into a staging directory and moved into ``out_dir``
    together with a completion marker ``.refcomp-complete`` (their SHA-256),
    so a killed run leaves ``out_dir`` absent, or as it was, or complete
    (refcomp.io._atomic.atomic_directory).  Returns the list of file names
    written.
    """
    with atomic_directory(out_dir) as stage:
        return _write_report(result, stage, plots=plots)


def _write_report(result, out_dir, *, plots):
    files = []
    _write_text(os.path.join(out_dir, "runs.csv"), _csv_text(result["runs"], _fields(result)))
    files.append("runs.csv")
    pareto = {}
    for m in result["settings"]["methods"]:
        rs = [r for r in result["runs"] if r["experiment"] == "adaptive" and r["method"] == m]
        if rs:
            pareto[m] = pareto_front(rs)
    _write_text(os.path.join(out_dir, "runs.json"),
                json.dumps(dict(result, pareto=pareto), indent=1, sort_keys=True) + "\n")
    files.append("runs.json")
    text = tables_markdown(result) + "\n"
    if result.get("seed004"):            # only when the pca method ran
        text += "\n" + seed004_markdown(result["seed004"]) + "\n"
    _write_text(os.path.join(out_dir, "tables.md"), text)
    files.append("tables.md")
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return files
        files += _plots(result, out_dir)
        if result.get("seed004"):
            files += _seed004_plot(result, out_dir)
    return files
