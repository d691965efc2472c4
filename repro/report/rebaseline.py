"""`repro baseline`: rerun the smoke pipeline per seed and precision and write the baseline with its spread
(reports/baselines/smoke.json, an intended change in accuracy made one reviewed commit)."""
from repro import atomic, machine
from repro.evaluation import ledger
from repro.errors import ReproError
from repro.report import baseline, checks

PRECISION_AMP = {"fp32": "none", "bf16": "bf16"}   # baseline precision -> the smoke profile's train.amp


def default_precisions() -> list:
    """fp32, plus bf16 where this CPU has it natively."""
    return ["fp32", *(["bf16"] if machine.native_bf16("cpu") else [])]


def rebaseline(seeds, precisions, run_smoke, out=None, published_path=None, ledger_dir=None) -> tuple:
    """Measure every precision over `seeds` and write the baseline; entries of other precisions are kept.

    Args:
        seeds: distinct seeds, at least published.yaml tolerances.S.min_seeds of them.
        precisions: keys of PRECISION_AMP.
        run_smoke: (seed, amp) -> {config name -> metrics} (the CLI passes repro.smoke's; tests inject runs).
        out: the baseline file (default: published.yaml tolerances.S.baseline).
        published_path: repro/published.yaml.
        ledger_dir: the seed ledger the default precision's runs are appended to (default: reports/ledger).

    Returns:
        (the baseline path, [[precision, config, metric, mean, std, range, tolerance]]).

    Raises:
        ReproError: fewer distinct seeds than the tier's minimum.
    """
    inputs = checks.load_inputs(**({"published_path": published_path} if published_path else {}),
                                baseline_path=out, platform={})
    tier_s = inputs.published["tolerances"]["S"]
    seeds = sorted(set(seeds))
    if len(seeds) < int(tier_s["min_seeds"]):
        raise ReproError(f"--seeds: need at least {tier_s['min_seeds']} distinct seeds to measure a spread")
    # The seeds of the precision the default run trains in here are retrains of it: the seed ledger keeps them,
    # so that tier S equivalence (TOST over seeds) has them without rerunning the pipeline per seed.
    default_precision = machine.precision_name(machine.resolve_amp("auto", "cpu"))
    # The code measured is the tree as it is now: asked per entry, git would see this command's own first
    # ledger write and label the later entries "+dirty".
    commit = ledger.git_commit()
    base, rows = inputs.baseline, []
    for precision in precisions:
        amp = PRECISION_AMP[precision]
        runs = baseline.run_seeds(seeds, lambda seed: run_smoke(seed, amp))
        entry = baseline.derive_baseline(runs, inputs.published["metric_names"], tier_s, machine.fingerprint())
        if precision == default_precision:
            for per_config in runs.values():
                for name, record in per_config.items():
                    path = ledger.append(ledger_dir or ledger.LEDGER_DIR, {**record, "config": name},
                                         inputs.published["metric_names"], commit)
            print(f"seed ledger: {precision} seeds {sorted(runs)} recorded in {path.parent}")
        base = baseline.with_entry(base, precision, entry)
        rows += [[precision, n, m, f"{s['mean']:.4f}", f"{s['std']:.4f}", f"{s['range']:.4f}",
                  f"{s['tolerance']:.4f}"] for n, e in entry["configs"].items() for m, s in e.items()]
    atomic.write_json(inputs.baseline_path, base)
    return inputs.baseline_path, rows
