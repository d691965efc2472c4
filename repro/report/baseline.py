"""The smoke baseline (tier S): per-seed smoke metrics, their spread, and the tolerance derived from it.

    repro baseline --seeds 0 1 2     # reruns the smoke pipeline once per seed, writes reports/baselines/smoke.json

The file is committed; its git diff is the record of a deliberate baseline refresh. One entry per training
precision (the smoke profile trains with `amp: auto`: bf16 where the CPU has it natively, fp32 elsewhere, and
the two give different numbers), each measured over its own seeds:

    {"profile": "smoke",
     "precisions": {"fp32": {"profile": "smoke", "seeds": [0, 1, 2], "platform": {...}, "rule": {...},
                             "configs": {"256x192": {"AP": {"per_seed": {"0": .., "1": .., "2": ..}, "mean": ..,
                                                            "std": .., "pooled_std": .., "range": ..,
                                                            "tolerance": ..}, ...,
                                                     "train_loss": {...},
                                                     "num_images": {"per_seed": {...}, "mean": .., "std": 0.0,
                                                                    "range": 0.0, "tolerance": 0.0}}}},
                    "bf16": {...}}}
"""
import copy
import json
import math
import os
import subprocess

import numpy as np

from repro.errors import InputFileError

# Counts that are properties of the data set, not of training: every seed must give the same value.
# (num_instances, the people kept after OKS-NMS, depends on the predictions and is not one of them.)
COUNT_KEYS = ("num_images", "num_boxes")
# The training loss of the evaluated checkpoint's epoch: not in AP units, so its floor is relative.
LOSS_KEYS = ("train_loss",)


def tolerance_rule(tier_s: dict) -> dict:
    """The derivation rule recorded in the baseline, from published.yaml `tolerances.S`."""
    return {"formula": "max(k_std * std, max - min, floor)", "std": "sample standard deviation (ddof=1)",
            "pooled": "once the file has several precisions, std is pooled over them: each precision's seeds "
                      "about their own mean, divided by the sum of (seeds - 1)",
            "k_std": float(tier_s["k_std"]), "floor": float(tier_s["floor"]),
            "loss_floor_rel": float(tier_s["loss_floor_rel"]),
            "loss_floor": "for train_loss the floor is loss_floor_rel * |mean|"}


def derive_metric(metric: str, per_seed: dict, rule: dict) -> dict:
    """Spread and tolerance of one metric over seeds.

    Args:
        metric: its name; a count (COUNT_KEYS) gets tolerance 0 and every seed must agree.
        per_seed: seed (str) -> value, at least 2 seeds.
        rule: from `tolerance_rule`.

    Returns:
        {"per_seed", "mean", "std", "range", "tolerance"}.
    """
    values = np.array(list(per_seed.values()), dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    spread = float(values.max() - values.min())
    if metric in COUNT_KEYS and spread != 0:
        raise ValueError(f"a count differs between seeds: {metric} {per_seed}")
    mean = float(values.mean())
    return {"per_seed": dict(per_seed), "mean": mean, "std": std, "range": spread,
            "tolerance": tolerance(metric, mean, std, spread, rule)}


def tolerance(metric: str, mean: float, std: float, spread: float, rule: dict) -> float:
    """The rule's band: max(k_std * std, max - min, floor); 0 for a count; the training loss's floor is
    loss_floor_rel of its mean."""
    if metric in COUNT_KEYS:
        return 0.0
    floor = rule["loss_floor_rel"] * abs(mean) if metric in LOSS_KEYS else rule["floor"]
    return max(rule["k_std"] * std, spread, floor)


def derive_baseline(runs: dict, metric_names, tier_s: dict, platform: dict) -> dict:
    """Build the baseline from smoke runs.

    Args:
        runs: seed -> {config name -> metrics dict (as in reports/metrics/<name>.json)}.
        metric_names: the COCO stats to record (published.yaml `metric_names`).
        tier_s: published.yaml `tolerances.S`.
        platform: `platform_fingerprint()` of the machine that ran the seeds.

    Returns:
        The baseline mapping (see the module docstring).
    """
    seeds = sorted(runs)
    if len(seeds) < int(tier_s["min_seeds"]):
        raise ValueError(f"a baseline needs at least {tier_s['min_seeds']} seeds to measure a spread, "
                         f"got {seeds}")
    names = sorted(runs[seeds[0]])
    for seed in seeds:
        if sorted(runs[seed]) != names:
            raise ValueError(f"seed {seed} ran configs {sorted(runs[seed])}, seed {seeds[0]} ran {names}")
    rule = tolerance_rule(tier_s)
    configs = {}
    for name in names:
        entry = {}
        for metric in (*metric_names, *LOSS_KEYS, *COUNT_KEYS):
            per_seed = {str(s): _number(runs[s][name], metric, s, name) for s in seeds}
            entry[metric] = derive_metric(metric, per_seed, rule)
        configs[name] = entry
    return {"profile": "smoke", "seeds": seeds, "platform": dict(platform), "rule": rule,
            "configs": configs}


def _number(metrics: dict, metric: str, seed, name: str) -> float:
    value = metrics.get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"seed {seed}, config {name}: metric {metric!r} is {value!r}, not a finite number")
    return value


def with_entry(base: dict | None, precision: str, entry: dict) -> dict:
    """The baseline file `base` (None: a new one) with the entry of `precision` set, other entries kept, and
    every entry's tolerances re-derived from the spread pooled over all of them (`pool_tolerances`)."""
    base = {"profile": "smoke", "precisions": {}} if base is None else copy.deepcopy(base)
    base["precisions"] = {**base.get("precisions", {}), precision: copy.deepcopy(entry)}
    return pool_tolerances(base)


def pool_tolerances(base: dict) -> dict:
    """`base`, changed in place: each stat's tolerance derived from the seed spread pooled over its precisions.

    Three seeds estimate a stat's spread poorly (fp32 AP75 at 256x192 spanned 0.005 over seeds 0-2, bf16 0.013),
    and a CPU of another kind (other kernels, so no exact-seed check) lands like another seed: measured, an fp32
    run with AVX2-only kernels moved AP75 by 0.011, outside its 3-seed band. The precisions train the same recipe
    with different rounding, so their seeds sample the same noise; pooling them doubles the degrees of freedom.
    Each entry keeps its own mean and range; a stat that only some entries have keeps its own std.
    """
    entries = base["precisions"]
    for name in set.intersection(*(set(e["configs"]) for e in entries.values())):
        for metric in set.intersection(*(set(e["configs"][name]) for e in entries.values())):
            stats = [e["configs"][name][metric] for e in entries.values()]
            values = [np.array(list(s["per_seed"].values()), dtype=np.float64) for s in stats]
            dof = sum(len(v) - 1 for v in values)
            pooled = math.sqrt(sum(float(((v - v.mean()) ** 2).sum()) for v in values) / dof) if dof else 0.0
            for entry, s in zip(entries.values(), stats):
                s["pooled_std"] = pooled
                s["tolerance"] = tolerance(metric, s["mean"], pooled, s["range"], entry["rule"])
    return base


def precision_entry(base: dict | None, precision: str | None, path) -> tuple[dict | None, str]:
    """The entry of `base` for metrics trained in `precision`: (entry, "") or (None, why there is none)."""
    how = "`repro baseline --seeds 0 1 2` and commit it"
    if base is None:
        return None, f"no smoke baseline at {path}: create it with {how}"
    entries = base.get("precisions", {})
    if precision not in entries:
        return None, (f"the baseline {path} has no entry for training precision {precision!r} (has "
                      f"{sorted(entries)}): measure it with `repro baseline --precisions {precision}`")
    return entries[precision], ""


def run_seeds(seeds, run_smoke) -> dict:
    """Run the smoke pipeline once per seed: seed -> {config name -> metrics}."""
    return {int(seed): run_smoke(int(seed)) for seed in seeds}


def read(path, rev: str | None = None) -> dict | None:
    """The baseline at `path` in the working tree, or at git revision `rev` (`git show REV:path`).

    Returns:
        The mapping, or None when the file does not exist there.

    Raises:
        InputFileError: the file is damaged or lacks a config's stats (see `check`).
    """
    where = f"{path}@{rev}" if rev else str(path)
    if rev is None:
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
    else:
        # "./" makes the path relative to the current directory rather than to the repository root.
        done = subprocess.run(["git", "show", f"{rev}:./{os.path.relpath(path)}"], capture_output=True, text=True)
        if done.returncode != 0:
            return None
        text = done.stdout
    try:
        base = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputFileError(f"{where}: damaged baseline, not valid JSON ({e})") from None
    check(base, where)
    return base


def check(base, where: str) -> None:
    """Every precision entry of a baseline has configs whose stats have a finite mean and tolerance >= 0.

    Raises:
        InputFileError: naming `where` and the key that is missing or not a finite number.
    """
    entries = base.get("precisions") if isinstance(base, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise InputFileError(f"{where}: baseline has no 'precisions' mapping (one entry per training precision)")
    for precision, entry in entries.items():
        configs = entry.get("configs") if isinstance(entry, dict) else None
        if not isinstance(configs, dict) or not configs:
            raise InputFileError(f"{where}: precisions.{precision}: no 'configs' mapping")
        for name, stats_by_metric in configs.items():
            if not isinstance(stats_by_metric, dict) or not stats_by_metric:
                raise InputFileError(f"{where}: precisions.{precision}.configs.{name}: no stats")
            for metric, stats in stats_by_metric.items():
                for key, low in (("mean", -math.inf), ("tolerance", 0.0)):
                    value = stats.get(key) if isinstance(stats, dict) else None
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                            or value < low:
                        raise InputFileError(f"{where}: precisions.{precision}.configs.{name}.{metric}.{key}: "
                                             f"{value!r} is not a finite number{' >= 0' if low == 0 else ''}")
