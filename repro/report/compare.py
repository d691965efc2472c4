"""Every metrics file against the published table and the smoke baseline -> verdicts, reports, plots.

    python -m stages.compare          # the DVC stage, and `repro compare`: run_compare (+ the MLflow run)
    compare.compare(...)              # the reports only, from Python

Writes, under `out_dir` (reports/):
    comparison.md                    per config and tier: metric, published/expected, measured, delta,
                                     tolerance, verdict; which tiers ran and which did not, and why
                                     + equivalence over retrains (seed ledger, TOST) and the cost
                                     estimate (reports/plan/<profile>.json) beside the measured times
    comparison.json                  DVC metrics: the same numbers (4 dp) and verdicts, nested
    plots/val_ap.csv + .png          val AP per epoch for each config (models/<name>/val_history.csv)
    plots/published_vs_measured.csv + .png
    plots/learning_curve.csv + .png  each validation of the run against the reference training curve
                                     (repro/engine/curve.py), flagged where it is more than the band below
    diagnosis/<pair>/                with eval_dir: where the AP went between two prediction files
                                     (repro/report/diagnose.py), also the "Diagnosis" section of comparison.md
as one set (repro.atomic.all_or_none): all of them are replaced, or none.
The checks themselves live in repro/report/tiers.py (+ checks.py) and repro/engine/curve.py; this module only
collects and writes them (tables.py and plots.py draw them).
The learning-curve flags are reported (comparison.md section, comparison.json `learning_curve`), not gated:
a run behind the curve mid-schedule can still end within the tier-C tolerance, which is the gate.
"""
import csv
import json
from collections import Counter
from pathlib import Path

from repro import atomic, config, records, tracking
from repro.engine import curve, mmpose_log
from repro.report import checks, equivalence, plan, plots, tables, tiers, tracking_run
from repro.report.tables import render, rounded as _round


def run_compare(cfg, *, metrics_dir, models_dir, out_dir, eval_dir) -> dict:
    """The compare step (`python -m stages.compare`, `repro compare`): `compare`, then the comparison as an
    MLflow run (verdicts, comparison.md, the diagnosis plots, the learning curve) that closes this pipeline's
    parent run.

    Args:
        cfg: the run configuration (config.load): its profile and val annotations are used.
        metrics_dir, models_dir, out_dir, eval_dir: as `compare` (reports/metrics, models, reports, outputs/eval).

    Returns:
        The comparison.json content.

    Raises:
        TrackingError: the MLflow store cannot take writes (before any work).
    """
    tracking.preflight()
    out_dir = Path(out_dir)
    summary = compare(Path(metrics_dir), Path(models_dir), out_dir, cfg.profile, eval_dir=Path(eval_dir),
                      gt_path=cfg.data.val_ann)
    pairs = [p["name"] for p in json.loads((out_dir / "diagnosis" / "pairs.json").read_text())]   # this run's
    pngs = [(out_dir / "diagnosis" / name / "keypoint_oks.png", f"diagnosis/{name}") for name in pairs]
    tracking_run.log_comparison(cfg, summary, out_dir / "comparison.md", artifacts=pngs, also=lambda tracker:
                                log_learning_curve(tracker, summary["learning_curve"], out_dir / "plots"))
    tracking_run.close_pipeline(summary)
    return summary


def compare(metrics_dir, models_dir, out_dir, profile: str, published_path=config.PUBLISHED_PATH,
            baseline_path=None, eval_dir=None, gt_path=None) -> dict:
    """Compare, write the reports and plots, and return the comparison.json content.

    Args:
        metrics_dir: reports/metrics (<name>.json, published_<name>.json).
        models_dir: models (<name>/val_history.csv).
        out_dir: reports.
        profile: smoke | full; decides which tiers are required (see tiers.required_tiers).
        published_path: repro/published.yaml.
        baseline_path: the smoke baseline; default published.yaml tolerances.S.baseline.
        eval_dir: outputs/eval (<name>/predictions.json, published_<name>/...); None: no diagnosis.
        gt_path: the val annotation file the predictions were evaluated on (with eval_dir).

    Returns:
        The summary written to comparison.json.
    """
    out_dir = Path(out_dir)
    inputs = checks.load_inputs(metrics_dir, published_path, baseline_path)
    results = tiers.check_all(inputs)
    required = tiers.required_tiers(profile)
    names = list(inputs.published["models"])
    diagnosis = ""
    if eval_dir is not None:   # first: it checks its input files before anything is written
        from repro.report import diagnose   # imported when asked: pycocotools' analysis is not needed otherwise
        diagnosis = "\n" + diagnose.pipeline_section(profile, names, eval_dir, gt_path, out_dir / "diagnosis")
    summary = summarize(results, profile, required, inputs.published["tolerances"]["C"]["suspect_fails"])
    add_equivalence(summary, equivalence.equivalences(inputs, required))
    summary["cost"] = plan.cost_rows(out_dir / "plan" / f"{profile}.json", Path(models_dir), Path(metrics_dir))
    histories = val_histories(Path(models_dir), names)
    evaluations = evaluation_records(inputs)   # read once, for the plots and the stats files
    summary["learning_curve"] = learning_curves(histories, names, profile, inputs.published, Path(models_dir))
    with atomic.all_or_none():   # the reports and plots are one set: a failure leaves the old set whole
        atomic.write_json(out_dir / "comparison.json", summary)
        atomic.write_text(out_dir / "comparison.md", markdown(results, summary, inputs.published) +
                          extra_sections(summary, out_dir / "plan" / f"{profile}.json") + diagnosis)
        plots.write_val_ap(out_dir / "plots", histories)
        plots.write_published_vs_measured(out_dir / "plots", published_vs_measured(inputs, evaluations))
        plots.write_learning_curve(out_dir / "plots", summary["learning_curve"])
        for path, stats in at_a_glance(results, inputs, evaluations, out_dir / "stats").items():
            atomic.write_json(path, stats)
    return summary


def evaluation_records(inputs) -> dict:
    """{(config, source): its metrics record, {} where there is none} for every config and source."""
    return {(name, source): records.read(records.metrics_path(name, source, inputs.metrics_dir)) or {}
            for name in inputs.published["models"] for source in records.SOURCES}


def at_a_glance(results, inputs, evaluations: dict, stats_dir) -> dict:
    """{reports/stats/<tag>.json: {the 10 stats (4 dp), "verdict"}} per config and source: the DVC metrics,
    one small flat row per evaluation. The verdict is that of the tier checking the evaluation in this profile
    (smoke: trained S, reference E; full: trained C, published A), "not_run" where none ran."""
    verdicts = {r.path: tier_verdict(r, inputs.published["tolerances"]["C"]["suspect_fails"])
                for r in results if r.ran}   # by the record a tier read (A-subset reads A's)
    out = {}
    for name in inputs.published["models"]:
        for source in records.SOURCES:
            record = evaluations[name, source]
            stats = {m: _round(checks.metric_value(record, m)) for m in inputs.published["metric_names"]
                     if record.get("status") != "not_run" and checks.metric_value(record, m) is not None}
            verdict = verdicts.get(str(records.metrics_path(name, source, inputs.metrics_dir)), "not_run")
            out[records.stats_path(name, source, stats_dir)] = {**stats, "verdict": verdict}
    return out


def summarize(results, profile: str, required, suspect_fails: bool = False) -> dict:
    """comparison.json: overall verdict, verdict counts, tier status and every row (4 dp)."""
    problems = tiers.failures(results, required, strict=False, suspect_fails=suspect_fails)
    ran = [r for r in results if r.ran]
    verdict = "not_run" if not ran else ("fail" if problems else "pass")
    counts = Counter(row.verdict for r in results for row in r.rows)
    counts.update({"not_run": sum(not r.ran for r in results)})
    status, rows = {}, {}
    for r in results:
        status.setdefault(r.tier, {})[r.config] = {
            "status": "ran" if r.ran else "not_run", "required": r.tier in required,
            "verdict": tier_verdict(r, suspect_fails),
            "reason": r.not_run}
        for row in r.rows:
            rows.setdefault(r.tier, {}).setdefault(r.config, {})[row.metric] = {
                "expected": _round(row.expected), "measured": _round(row.measured),
                "delta": _round(row.delta), "tolerance": row.tolerance, "verdict": row.verdict}
    return {"profile": profile, "verdict": verdict, "required_tiers": list(required),
            "counts": {v: counts.get(v, 0) for v in ("pass", "fail", "suspect", "info", "not_run")},
            "tiers": status, "results": rows}


def tier_verdict(result, suspect_fails: bool = False) -> str:
    """not_run | fail | suspect (reported, not failing unless configured) | pass."""
    if not result.ran:
        return "not_run"
    if result.failed(suspect_fails):
        return "fail"
    if any(row.verdict == "too_small" for row in result.rows):   # tier A-subset: never a pass
        return "too_small"
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
        header = ("metric", tiers.row_of(r.tier).against, "measured", "delta", "tolerance", "verdict", "note")
        out.append(render(header, [tables.check_cells(row)[2:] for row in r.rows], markdown=True))
    out.append("## Which tiers ran\n")
    out.append(render(tables.STATUS_COLUMNS, tables.status_cells(results), markdown=True))
    out.append(learning_curve_markdown(summary["learning_curve"], published["learning_curve"]))
    out.append("## Tolerances (repro/published.yaml)\n")
    for tier, tol in published["tolerances"].items():
        out.append(f"- **{tier}** ({tol['title']}): {tol['justification']}")
    out.append("\nPlots: `plots/val_ap.png`, `plots/published_vs_measured.png`, `plots/learning_curve.png`.\n")
    return "\n".join(out)


def add_equivalence(summary: dict, rows: list) -> None:
    """summary["equivalence"] (the seed-ledger TOST rows) and, per tier and config, an AP_seed_mean result
    row (mean AP over the ledger's seeds vs the reference), which the MLflow compare run logs as a metric."""
    summary["equivalence"] = rows
    for e in rows:
        delta = None if e["mean"] is None or e["reference"] is None else e["mean"] - e["reference"]
        summary["results"].setdefault(e["tier"], {}).setdefault(e["config"], {})["AP_seed_mean"] = {
            "expected": _round(e["reference"]), "measured": _round(e["mean"]), "delta": _round(delta),
            "tolerance": "TOST" if e["margin"] is None else f"TOST ±{e['margin']:.4f}", "verdict": e["verdict"]}


def extra_sections(summary: dict, plan_path: Path) -> str:
    """comparison.md: equivalence over retrains (seed ledger) and the cost estimate beside the actual."""
    out = ["\n## Equivalence over retrains (seed ledger)\n",
           f"Mean AP of every retrain recorded in the seed ledgers (`reports/ledger/`, `outputs/ledger/`) against the reference, two one-sided t tests "
           f"at alpha {equivalence.ALPHA} (equivalent when the 90% CI lies within reference ± margin); "
           f"fewer than 2 seeds: not_enough_seeds. Reported beside the single-run verdicts above.\n"]
    out.append(tables.render_equivalence(summary["equivalence"], markdown=True) if summary["equivalence"]
               else "(no ledger tier for this profile)\n")
    out.append("\n## Cost: estimate (`repro plan`) vs actual\n")
    if summary["cost"]:
        out.append(f"Estimate: `{plan_path}`. Actual: wall time recorded by each stage.\n")
        out.append(plan.render_cost(summary["cost"], markdown=True))
    else:
        out.append(f"**not run**: {plan_path} does not exist (`repro plan` or the DVC stage `plan` writes it)\n")
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




def published_vs_measured(inputs, evaluations: dict) -> list:
    """[(key, published, measured)] for every published stat with a measured value (trained or published
    checkpoint), key "<config> <source> <metric>"; stable order: config, source, metric."""
    rows = []
    for name, entry in inputs.published["models"].items():
        for source in ("trained", "published"):   # the evaluations the published table is about
            record = evaluations[name, source]
            if record.get("status") == "not_run" or record.get("source") != source:
                continue
            for metric, want in entry["results"].items():
                got = checks.metric_value(record, metric)
                if got is not None:
                    profile = "" if record.get("profile") == "full" else f" ({record.get('profile')})"
                    rows.append((f"{name} {source}{profile} {metric}", _round(want), _round(got)))
    return rows




# ----------------------------------------------------------------------------------------- learning curve

def learning_curves(histories: dict, names, profile: str, published: dict, models_dir: Path) -> dict:
    """comparison.json `learning_curve`: per config, each validation against the profile's reference curve.

    Args:
        histories: name -> [(epoch, AP)] of the runs (val_histories).
        names: the configs, in report order.
        profile: selects the reference log and band (published.yaml learning_curve).
        published: the published table.
        models_dir: where the val histories were looked for (named in the reason when one is missing).

    Returns:
        name -> {"status": "ran" | "not_run", "reason", "reference": log path, "band", "flagged": count,
        "validations": curve.compare_curve rows (4 dp), "reference_curve": [[epoch, AP], ...]}.
    """
    out = {}
    for name in names:
        path, band = curve.reference_spec(published, profile, name)
        entry = {"status": "not_run", "reason": None, "reference": str(path), "band": band, "flagged": 0,
                 "validations": [], "reference_curve": []}
        out[name] = entry
        if name not in histories:
            entry["reason"] = f"{models_dir / name / 'val_history.csv'}: not found (train@{name} has not run)"
            continue
        if not histories[name]:
            entry["reason"] = (f"{models_dir / name / 'val_history.csv'}: no validation (train.val_interval null: "
                               f"the evaluate stage alone measured the trained weights)")
            continue
        try:
            ref = curve.reference(published, profile, name)
        except mmpose_log.LogFormatError as e:
            entry["reason"] = str(e)
            continue
        rows = [{k: _round(v) if isinstance(v, float) else v for k, v in row.items()}
                for row in curve.compare_curve(histories[name], ref.points, ref.band)]
        entry.update(status="ran", flagged=sum(row["below_band"] is True for row in rows), validations=rows,
                     reference_curve=[[e, _round(ap)] for e, ap in ref.points])
    return out


def learning_curve_markdown(curves: dict, spec: dict) -> str:
    """comparison.md section: per config, the run's validations against the reference, flags marked."""
    out = ["## Learning curve against the reference run\n",
           "Each validation of the run against the reference training log's val AP at the same epoch (linear "
           "between its validations; none outside them). **below band** marks a validation more than the "
           "band below the reference. Reported, not gated (the final AP is gated by tier C). Band: "
           f"{spec['justification']}\n"]
    for name, entry in curves.items():
        out.append(f"### {name}: reference `{entry['reference']}`, band {entry['band']}\n")
        if entry["status"] != "ran":
            out.append(f"**not run**: {entry['reason']}\n")
            continue
        flag = {True: "**below band**", False: "ok", None: "no reference at this epoch"}
        num = lambda v, fmt=".4f": "-" if v is None else format(v, fmt)  # noqa: E731
        rows = [(r["epoch"], num(r["measured"]), num(r["reference"]), num(r["delta"], "+.4f"),
                 flag[r["below_band"]]) for r in entry["validations"]]
        out.append(f"{entry['flagged']} of {len(rows)} validation(s) below the band.\n")
        out.append(render(("epoch", "measured AP", "reference AP", "delta", "flag"), rows, markdown=True))
    return "\n".join(out)



def log_learning_curve(tracker, curves: dict, plots_dir: Path) -> None:
    """The learning curve in the compare stage's MLflow run: per config and epoch (step) the measured AP
    `<config>/val/AP` (the training run's `val/AP`) and the reference `curve/<config>/reference`, the count of flagged validations as a tag, and the plot files.

    Args:
        tracker: the compare run (tracking.Tracker, or anything with its methods).
        curves: the `learning_curve` section of the summary.
        plots_dir: where plots.write_learning_curve put the plot files.
    """
    for name, entry in curves.items():
        for r in entry["validations"]:
            values = {f"{name}/val/AP": r["measured"], f"curve/{name}/reference": r["reference"]}
            tracker.log_metrics({k: v for k, v in values.items() if v is not None}, step=r["epoch"])
        tracker.set_tags({f"repro.curve.{name}": entry["status"] if entry["status"] != "ran"
                          else f"{entry['flagged']} below band"})
    for suffix in (".png", ".csv"):
        tracker.log_artifact(plots_dir / f"learning_curve{suffix}", "plots")
