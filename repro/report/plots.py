"""The report's plots, each a PNG (Agg, headless: `dvc plots show` HTML is blank offline) beside the CSV
that DVC's plots read. A leaf module: it draws the rows it is given."""
import csv
import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from repro import atomic
from repro.report.tables import rounded


def csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_val_ap(plots_dir: Path, histories: dict):
    """plots/val_ap.csv (config, epoch, AP; long format) and plots/val_ap.png (one line per config)."""
    rows = [(name, epoch, rounded(ap)) for name in histories for epoch, ap in sorted(histories[name])]
    atomic.write_text(plots_dir / "val_ap.csv", csv_text(("config", "epoch", "AP"), rows))
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name, points in histories.items():
        epochs, aps = zip(*sorted(points)) if points else ((), ())
        ax.plot(epochs, aps, marker="o", label=name)
    ax.set(xlabel="epoch", ylabel="val AP", title="Validation AP per epoch")
    ax.grid(alpha=0.3)
    if histories:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no val_history.csv found", ha="center", transform=ax.transAxes)
    save_png(fig, plots_dir / "val_ap.png")


def write_published_vs_measured(plots_dir: Path, rows: list):
    """plots/published_vs_measured.csv (metric, published, measured) and a grouped bar chart PNG."""
    atomic.write_text(plots_dir / "published_vs_measured.csv", csv_text(("metric", "published", "measured"), rows))
    fig = Figure(figsize=(max(6, 0.45 * len(rows) + 2), 4.5))
    ax = fig.add_subplot()
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r[1] for r in rows], width=0.4, label="published")
    ax.bar([x + 0.2 for x in xs], [r[2] for r in rows], width=0.4, label="measured")
    ax.set_xticks(list(xs), [r[0] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="value", ylim=(0, 1), title="Published vs measured")
    if rows:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no measured metrics", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    save_png(fig, plots_dir / "published_vs_measured.png")


def save_png(fig: Figure, path: Path):
    buf = io.BytesIO()
    FigureCanvasAgg(fig)  # Agg canvas: no display and no global backend switch (CI and DVC run headless)
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    atomic.write_bytes(path, buf.getvalue())


def write_learning_curve(plots_dir: Path, curves: dict):
    """plots/learning_curve.csv (config, epoch, measured, reference, lower_bound, below_band) and its PNG:
    per config, the reference curve with its band, the run's validations, flagged ones marked.

    Args:
        plots_dir: reports/plots.
        curves: the `learning_curve` section of the summary (learning_curves).
    """
    rows = [(name, r["epoch"], r["measured"], r["reference"],
             None if r["reference"] is None else rounded(r["reference"] - entry["band"]), r["below_band"])
            for name, entry in curves.items() for r in entry["validations"]]
    atomic.write_text(plots_dir / "learning_curve.csv",
                      csv_text(("config", "epoch", "measured", "reference", "lower_bound", "below_band"), rows))
    fig = Figure(figsize=(6 * max(len(curves), 1), 4))
    for i, (name, entry) in enumerate(curves.items()):
        ax = fig.add_subplot(1, max(len(curves), 1), i + 1)
        ax.set(xlabel="epoch", ylabel="val AP", title=f"{name}: run vs reference")
        ax.grid(alpha=0.3)
        if entry["status"] != "ran":
            ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
            continue
        ref_e, ref_ap = zip(*entry["reference_curve"])
        ax.plot(ref_e, ref_ap, color="gray", marker=".", label="reference")
        ax.fill_between(ref_e, [a - entry["band"] for a in ref_ap], ref_ap, color="gray", alpha=0.2,
                        label=f"band {entry['band']}")
        points = [(r["epoch"], r["measured"], r["below_band"]) for r in entry["validations"]]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="run")
        flagged = [p for p in points if p[2]]
        if flagged:
            ax.plot([p[0] for p in flagged], [p[1] for p in flagged], "rx", markersize=10, label="below band")
        ax.legend()
    fig.tight_layout()
    save_png(fig, plots_dir / "learning_curve.png")
