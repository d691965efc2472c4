"""The gate tiers, one row each: which evaluation record a tier reads, of which profile, how to produce it, and
its check. Tolerances and their justification are repro/published.yaml `tolerances.<tier>`, keyed the same.

    A  the published checkpoint evaluated by us (profile full): every stat within a small absolute band; on a
       seeded val subset (eval.val_images) it is judged as A-subset (repro/report/subset_tier.py): the published
       number inside the subset's bootstrap interval, "too_small" when the subset cannot detect 0.02 AP.
    C  a full retrain (profile full): AP at least published - margin; suspect above published + margin.
    S  the CPU smoke fine-tune (profile smoke) against the committed baseline (reports/baselines/smoke.json).
    E  the committed smoke reference checkpoint evaluated by the code under test (profile smoke), against
       reports/reference/smoke.json: stats, golden predictions, data digests.

A tier with no record is "not_run" with its reason, never "pass". Adding a tier is one row here, one check
function (repro/report/checks.py) and its `tolerances` entry in published.yaml.
Strict mode fails when a required tier did not run; the required tiers are those asked for, else
REPRO_GATE_TIERS, else the profile's own (the rows whose profile it is).
"""
from dataclasses import dataclass
from typing import Callable

from repro import config, records
from repro.report import checks, subset_tier


@dataclass(frozen=True)
class Tier:
    name: str
    source: str        # the evaluation it reads: records.metrics_path(config, source)
    profile: str       # the profile that record must come from
    how: str           # how to produce that record
    check: Callable    # (name, record, inputs) -> [checks.Row]
    against: str       # what its expected values are, as the reports' column says
    missing: Callable = lambda name, inputs: ""   # (name, inputs) -> why the tier cannot check yet ("" if it can)
    ledger: bool = False   # also TOST over the seed ledger's retrains (repro/report/equivalence.py)


TABLE = (
    Tier("A", "published", "full", "the full profile: dvc exp run -S profile=full evaluate_published",
         checks.check_a, "published"),
    Tier("C", "trained", "full", "a full retrain: dvc exp run -S profile=full", checks.check_c, "published",
         ledger=True),
    Tier("S", "trained", "smoke", "the smoke pipeline: scripts/repro.sh", checks.check_s, "baseline",
         missing=checks.baseline_missing, ledger=True),
    Tier("E", "reference", "smoke", "the smoke pipeline's evaluate_reference stage: dvc repro evaluate_reference",
         checks.check_e, "reference", missing=checks.reference_missing),
)
TIERS = {t.name: t for t in TABLE}
NAMES = tuple(TIERS)
READS_AS = {subset_tier.TIER: "A"}   # a result's tier -> the row whose record it read (A-subset: A's)


def row_of(result_tier: str) -> Tier:
    """The table row behind a result's tier name (A-subset's is A)."""
    return TIERS[READS_AS.get(result_tier, result_tier)]


def profile_tiers(profile: str) -> tuple:
    """The tiers whose records the profile makes: smoke S, E; full A, C."""
    return tuple(t.name for t in TABLE if t.profile == profile)


def record_path(tier: str, name: str, metrics_dir) -> str:
    return str(records.metrics_path(name, TIERS[tier].source, metrics_dir))


def check_tier(tier: str, name: str, inputs: checks.GateInputs) -> checks.TierResult:
    """One tier's checks for one config; a missing or mismatched metrics record gives `not_run`."""
    row = TIERS[tier]
    path = record_path(tier, name, inputs.metrics_dir)
    record = records.read(path)
    why = not_run_reason(row, path, record) or row.missing(name, inputs)
    if why:
        return checks.TierResult(tier, name, path, not_run=why)
    if tier == "A" and subset_tier.is_subset(record):   # a val subset is never the published protocol
        return checks.TierResult(subset_tier.TIER, name, path,
                                 rows=tuple(subset_tier.checks(name, record, inputs.published)))
    return checks.TierResult(tier, name, path, rows=tuple(row.check(name, record, inputs)))


def not_run_reason(tier: Tier, path: str, record: dict | None) -> str:
    if record is None:
        return f"{path} does not exist (tier {tier.name} needs {tier.how})"
    if record.get("status") == "not_run":
        return f"{path}: not run: {record.get('reason', 'no reason given')}"
    if record.get("profile") != tier.profile:
        return f"{path} is from profile {record.get('profile')!r}; tier {tier.name} needs profile {tier.profile!r}"
    if record.get("source") != tier.source:
        return f"{path} has source {record.get('source')!r}; tier {tier.name} needs {tier.source!r}"
    if subset_tier.is_subset(record) and tier.name != "A":   # tier A judges a subset as A-subset
        return f"{path} is a val subset (eval.val_images {record['subset']['n']}); tier {tier.name} needs every image"
    return ""


def check_all(inputs: checks.GateInputs, tiers=NAMES, names=None) -> list:
    """Every requested tier for every config (default: the published table's configs), in a stable order."""
    names = list(names or inputs.published["models"])
    return [check_tier(tier, name, inputs) for tier in tiers for name in names]


def strict_enabled(flag: bool = False) -> bool:
    return flag or config.strict_gates()


def required_tiers(profile: str, tiers=None) -> tuple:
    """The tiers asked for if any, else REPRO_GATE_TIERS, else the profile's own tiers."""
    if tiers:
        return tuple(tiers)
    env = config.gate_tiers()
    return tuple(env) if env else profile_tiers(profile)


def failures(results, required, strict: bool, suspect_fails: bool = False) -> list:
    """Why the gate fails (empty: it passes): failing rows, and in strict mode required tiers not run."""
    bad = {"fail", "suspect"} if suspect_fails else {"fail"}
    out = [f"{r.tier} {r.config} {row.metric}: {row.verdict} {row.note}".rstrip()
           for r in results for row in r.rows if row.verdict in bad]
    if strict:   # a subset too small to detect 0.02 AP (tier A-subset) proves nothing: strict fails it
        out += [f"{r.tier} {r.config} {row.metric}: too_small {row.note}" for r in results for row in r.rows
                if row.verdict == "too_small"]
        out += [f"{r.tier} {r.config}: required tier not run: {r.not_run}"
                for r in results if r.tier in required and not r.ran]
    if not any(r.ran for r in results):
        out.append("no tier ran: nothing was measured, so nothing can pass")
    return out
