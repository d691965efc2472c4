"""Drift: the smoke profile's trained records against the committed baseline, like `dvc metrics diff`.

Every config with a trained record (reports/metrics/<config>.json) or a baseline entry is compared; a config
on one side only is a row of its own. Other evaluations (published_*, reference_*) are other tiers' records.
"""
from repro import records
from repro.report import checks
from repro.report.tables import fmt

COLUMNS = ("Path", "Metric", "Old", "New", "Change", "Tolerance", "Verdict")


def drift_configs(inputs: checks.GateInputs) -> list:
    """The union of the baseline's configs and those with a trained record."""
    in_baseline = {n for entry in inputs.baseline.get("precisions", {}).values() for n in entry["configs"]}
    return sorted(in_baseline | set(records.configs_with("trained", inputs.metrics_dir)))


def drift_rows(inputs: checks.GateInputs, names=None) -> list:
    """[path, metric, old (baseline mean), new, change, tolerance, verdict] per baseline metric, against the
    baseline entry of each record's training precision (fp32 when the record does not say).

    A config on one side only is a row of its own: "missing" (no metrics) or "not in baseline".
    """
    rows = []
    entries = inputs.baseline.get("precisions", {})
    for name in names or drift_configs(inputs):
        path = records.metrics_path(name, "trained", inputs.metrics_dir)
        record = records.read(path) or {}
        entry = entries.get(record.get("train_precision") or "fp32", {}).get("configs", {})
        if name not in entry:
            rows.append([str(path), "-", "-", fmt(checks.metric_value(record, "AP")), "-", "-", "not in baseline"])
            continue
        smoke = record.get("profile") == "smoke"
        for metric, stats in entry[name].items():
            new = checks.metric_value(record, metric) if smoke else None
            change = None if new is None else new - stats["mean"]
            ok = change is not None and abs(change) <= stats["tolerance"] + checks.EPS
            missing = "not smoke" if record.get("profile") not in (None, "smoke") else "missing"
            rows.append([str(path), metric, fmt(float(stats["mean"]), metric), fmt(new, metric),
                         fmt(change, metric, "+"), fmt(float(stats["tolerance"]), metric),
                         "ok" if ok else (missing if new is None else "DRIFT")])
    return rows
