"""Every metrics file against the published table and the smoke baseline -> verdicts, reports, plots.

    python -m stages.compare          # the DVC stage; or compare.compare(...) from Python

Writes, under `out_dir` (reports/):
    comparison.md                    per config and tier: metric, published/expected, measured, delta,
                                     tolerance, verdict; which tiers ran and which did not, and why
    comparison.json                  DVC metrics: the same numbers (4 dp) and verdicts, nested
    plots/val_ap.csv + .png          val AP per epoch for each config (models/<name>/val_history.csv)
    plots/published_vs_measured.csv + .png
    diagnosis/<pair>/                with eval_dir: where the AP went between two prediction files
                                     (repro/diagnose.py), also the "Diagnosis" section of comparison.md
The checks themselves live in repro/gates.py; this module only collects and writes them.
"""
import csv
import io
from collections import Counter
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from repro import atomic, gates

DP = 4


def _round(value):
    return None if value is None else round(float(value), DP)


def compare(metrics_dir, models_dir, out_dir, profile: str, published_path=gates.PUBLISHED_PATH,
            baseline_path=None, eval_dir=None, gt_path=None) -> dict:
    """Compare, write the reports and plots, and return the comparison.json content.

    Args:
        metrics_dir: reports/metrics (<name>.json, published_<name>.json).
        models_dir: models (<name>/val_history.csv).
        out_dir: reports.
        profile: smoke | full; decides which tiers are required (see gates.required_tiers).
        published_path: repro/published.yaml.
        baseline_path: the smoke baseline; default published.yaml tolerances.S.baseline.
        eval_dir: outputs/eval (<name>/predictions.json, published_<name>/...); None: no diagnosis.
        gt_path: the val annotation file the predictions were evaluated on (with eval_dir).

    Returns:
        The summary written to comparison.json.
    """
    out_dir = Path(out_dir)
    inputs = gates.load_inputs(metrics_dir, published_path, baseline_path)
    results = gates.evaluate(inputs)
    required = gates.required_tiers(profile)
    names = list(inputs.published["models"])
    diagnosis = ""
    if eval_dir is not None:   # first: it checks its input files before anything is written
        from repro import diagnose   # imported here: diagnose imports this module's _save_png
        diagnosis = "\n" + diagnose.pipeline_section(profile, names, eval_dir, gt_path, out_dir / "diagnosis")
    summary = summarize(results, profile, required, inputs.published["tolerances"]["C"]["suspect_fails"])
    atomic.write_json(out_dir / "comparison.json", summary)
    atomic.write_text(out_dir / "comparison.md", markdown(results, summary, inputs.published) + diagnosis)
    write_val_ap(out_dir / "plots", val_histories(Path(models_dir), names))
    write_published_vs_measured(out_dir / "plots", published_vs_measured(inputs))
    return summary


def summarize(results, profile: str, required, suspect_fails: bool = False) -> dict:
    """comparison.json: overall verdict, verdict counts, tier status and every row (4 dp)."""
    problems = gates.failures(results, required, strict=False, suspect_fails=suspect_fails)
    ran = [r for r in results if r.ran]
    verdict = "not_run" if not ran else ("fail" if problems else "pass")
    counts = Counter(row.verdict for r in results for row in r.rows)
    counts.update({"not_run": sum(not r.ran for r in results)})
    tiers, rows = {}, {}
    for r in results:
        tiers.setdefault(r.tier, {})[r.config] = {
            "status": "ran" if r.ran else "not_run", "required": r.tier in required,
            "verdict": tier_verdict(r, suspect_fails),
            "reason": r.not_run}
        for row in r.rows:
            rows.setdefault(r.tier, {}).setdefault(r.config, {})[row.metric] = {
                "expected": _round(row.expected), "measured": _round(row.measured),
                "delta": _round(row.delta), "tolerance": row.tolerance, "verdict": row.verdict}
    return {"profile": profile, "verdict": verdict, "required_tiers": list(required),
            "counts": {v: counts.get(v, 0) for v in ("pass", "fail", "suspect", "info", "not_run")},
            "tiers": tiers, "results": rows}


def tier_verdict(result, suspect_fails: bool = False) -> str:
    """not_run | fail | suspect (reported, not failing unless configured) | pass."""
    if not result.ran:
        return "not_run"
    if result.failed(suspect_fails):
        return "fail"
    return "suspect" if any(row.verdict == "suspect" for row in result.rows) else "pass"


def markdown(results, summary: dict, published: dict) -> str:
    """comparison.md: summary, one table per config and tier, tier status, tolerances with justification."""
    out = [f"# CPM reproduction: comparison ({summary['profile']} profile)\n",
           f"Overall: **{summary['verdict']}** — " +
           ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) +
           f". Required tiers for this profile: {', '.join(summary['required_tiers'])}.\n"]
    for r in results:
        titles = published["tolerances"][r.tier]["title"]
        out.append(f"## Tier {r.tier}, {r.config}: {titles}\n")
        if not r.ran:
            out.append(f"**not run**: {r.not_run}\n")
            continue
        out.append(f"Metrics: `{r.path}`\n")
        header = ("metric", "published" if r.tier != "S" else "baseline", "measured", "delta", "tolerance",
                  "verdict", "note")
        out.append(gates.render(header, [gates.row_cells(row)[2:] for row in r.rows], markdown=True))
    out.append("## Which tiers ran\n")
    out.append(gates.render(("tier", "config", "status", "metrics file", "reason"), gates.status_rows(results),
                            markdown=True))
    out.append("## Tolerances (repro/published.yaml)\n")
    for tier, tol in published["tolerances"].items():
        out.append(f"- **{tier}** ({tol['title']}): {tol['justification']}")
    out.append("\nPlots: `plots/val_ap.png`, `plots/published_vs_measured.png`.\n")
    return "\n".join(out)


def val_histories(models_dir: Path, names) -> dict:
    """name -> [(epoch, AP)] from models/<name>/val_history.csv (absent files give no entry)."""
    histories = {}
    for name in names:
        path = models_dir / name / "val_history.csv"
        if path.is_file():
            with open(path, newline="") as f:
                histories[name] = [(int(float(r["epoch"])), float(r["AP"])) for r in csv.DictReader(f)
                                   if r.get("AP") not in (None, "")]
    return histories


def _csv(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_val_ap(plots_dir: Path, histories: dict):
    """plots/val_ap.csv (config, epoch, AP; long format) and plots/val_ap.png (one line per config)."""
    rows = [(name, epoch, _round(ap)) for name in histories for epoch, ap in sorted(histories[name])]
    atomic.write_text(plots_dir / "val_ap.csv", _csv(("config", "epoch", "AP"), rows))
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
    _save_png(fig, plots_dir / "val_ap.png")


def published_vs_measured(inputs) -> list:
    """[(key, published, measured)] for every published stat with a measured value (trained or published
    checkpoint), key "<config> <source> <metric>"; stable order: config, source, metric."""
    rows = []
    for name, entry in inputs.published["models"].items():
        for tier, source in (("C", "trained"), ("A", "published")):
            record = gates.read_record(gates.metrics_path(inputs.metrics_dir, tier, name)) or {}
            if record.get("status") == "not_run" or record.get("source") != source:
                continue
            for metric, want in entry["results"].items():
                got = gates.metric_value(record, metric)
                if got is not None:
                    profile = "" if record.get("profile") == "full" else f" ({record.get('profile')})"
                    rows.append((f"{name} {source}{profile} {metric}", _round(want), _round(got)))
    return rows


def write_published_vs_measured(plots_dir: Path, rows: list):
    """plots/published_vs_measured.csv (metric, published, measured) and a grouped bar chart PNG."""
    atomic.write_text(plots_dir / "published_vs_measured.csv", _csv(("metric", "published", "measured"), rows))
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
    _save_png(fig, plots_dir / "published_vs_measured.png")


def _save_png(fig: Figure, path: Path):
    buf = io.BytesIO()
    FigureCanvasAgg(fig)  # Agg canvas: no display and no global backend switch (CI and DVC run headless)
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    atomic.write_bytes(path, buf.getvalue())
