"""Equivalence over N retrains (the seed ledger, reports/ledger, repro/evaluation/ledger.py): a two one-sided t
test (TOST) of the mean AP against the tier's reference, for the tiers marked `ledger` in repro/report/tiers.py.
Tier C's reference is the published AP ± tolerances.C.ap_below; tier S's the smoke baseline mean ± its measured
AP tolerance."""
import dataclasses
from pathlib import Path

from repro import machine, records
from repro.evaluation import ledger
from repro.report import checks, tiers, tost

ALPHA = 0.05


def reference(tier: str, name: str, inputs: checks.GateInputs) -> tuple:
    """(reference AP, margin, what the reference is), or (None, None, why) without one."""
    if tier == "C":
        return (inputs.published["models"][name]["results"]["AP"], inputs.published["tolerances"]["C"]["ap_below"],
                "published AP")
    # The baseline entry of the precision the smoke runs train in here (the latest metrics record says which).
    record = records.read(records.metrics_path(name, "trained", inputs.metrics_dir)) or {}
    precision = record.get("train_precision") or machine.precision_name(machine.resolve_amp("auto", "cpu"))
    entry = (inputs.baseline or {}).get("precisions", {}).get(precision, {}).get("configs", {}).get(name)
    if entry is None:
        return None, None, f"no {precision} smoke baseline entry for {name} in {inputs.baseline_path}"
    return entry["AP"]["mean"], entry["AP"]["tolerance"], f"smoke baseline mean, {precision} ({inputs.baseline_path})"


def ledger_dirs(metrics_dir) -> tuple:
    """The committed ledger beside the metrics (reports/ledger) and the run ledger (outputs/ledger) of the same
    checkout."""
    root = Path(metrics_dir).parent.parent
    return Path(metrics_dir).parent / "ledger", root / ledger.RUN_LEDGER_DIR


def equivalence(tier: str, name: str, inputs: checks.GateInputs, ledger_dir=None) -> dict:
    """TOST of the ledgers' per-seed AP for `tier` and config `name` (ledger_dir: one ledger; default both of
    `ledger_dirs`).

    Returns:
        {"tier", "config", "ledger", "seeds", "reference_is", "n", "mean", "std", "reference", "margin",
        "alpha", "ci_low", "ci_high", "p_value", "verdict"}; verdict not_enough_seeds below 2 seeds.
    """
    dirs = (Path(ledger_dir),) if ledger_dir else ledger_dirs(inputs.metrics_dir)
    paths = [ledger.ledger_path(d, tiers.TIERS[tier].profile, name) for d in dirs]
    per_seed = ledger.values_by_seed(ledger.read_all(paths))
    path = " + ".join(map(str, paths))
    ref, margin, what = reference(tier, name, inputs)
    head = {"tier": tier, "config": name, "ledger": str(path), "seeds": sorted(per_seed), "reference_is": what}
    if ref is None:
        return {**head, "n": len(per_seed), "mean": None, "std": None, "reference": None, "margin": None,
                "alpha": ALPHA, "ci_low": None, "ci_high": None, "p_value": None, "verdict": "not_run"}
    return {**head, **dataclasses.asdict(tost.tost(list(per_seed.values()), ref, margin, ALPHA))}


def equivalences(inputs: checks.GateInputs, tier_names=tiers.NAMES, names=None) -> list:
    """`equivalence` for every ledger tier among `tier_names` and every config."""
    names = list(names or inputs.published["models"])
    return [equivalence(t, n, inputs) for t in tier_names if tiers.TIERS[t].ledger for n in names]
