"""Gates: measured metrics against the published table (tiers A, C) and the smoke baseline (tier S).

    repro gate [--strict] [--tier A C S]     # table of every check; exit 1 on a failure
    repro gate --tier C [--require-equivalence]   # + TOST over the seed ledger's retrains (reports/ledger)
    repro drift [--rev REV]                  # `dvc metrics diff`-style table against the smoke baseline
    repro baseline --seeds 0 1 2             # rerun the smoke pipeline per seed, write the baseline

Tiers (tolerances and their justification: repro/published.yaml `tolerances`):
    A  reports/metrics/published_<name>.json, the published checkpoint evaluated by us (profile full).
    C  reports/metrics/<name>.json from a full retrain (profile full).
    S  reports/metrics/<name>.json from the CPU smoke profile, against reports/baselines/smoke.json.
    E  reports/metrics/reference_<name>.json, the committed smoke reference checkpoint evaluated by the code
       under test (profile smoke), against reports/reference/smoke.json: stats, golden predictions, data.
A tier with no metrics is "not_run" with its reason, never "pass". A metric that is missing or not a
finite number (NaN, Inf) and a config the baseline lacks are failures in every tier, strict or not; a
damaged metrics or baseline file (or a baseline entry without its stats) is an error naming the file.
Strict mode (--strict or REPRO_STRICT_GATES=1) fails when a required tier did not run; the required tiers
are --tier, else REPRO_GATE_TIERS (e.g. "A,C"), else the profile's own (smoke: S and E; full: A and C).
"""
import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from repro import atomic, config, machine
from repro.errors import InputFileError
from repro.report import baseline

TIERS = ("A", "C", "S", "E")
PRECISION_AMP = {"fp32": "none", "bf16": "bf16"}   # baseline precision -> the smoke profile's train.amp
PROFILE_TIERS = {"smoke": ("S", "E"), "full": ("A", "C")}
STRICT_ENV = config.STRICT_GATES_ENV
TIERS_ENV = config.GATE_TIERS_ENV
PUBLISHED_PATH = config.PUBLISHED_PATH
METRICS_DIR = Path("reports/metrics")
EPS = 1e-9  # float slack on tolerance comparisons: 0.625 - 0.623 is 0.0020000000000000018
# Published evaluation settings (published.yaml eval_settings) against the `eval` block of a metrics file.
PROTOCOL = {"flip_test": "flip_test", "shift_heatmap": "shift_heatmap",
            "keypoint_score_thr": "keypoint_score_thr", "nms_thr": ("nms", "thr")}


@dataclass(frozen=True)
class Row:
    """One check. `tolerance` is the rule as text ("±0.0020", ">= -0.0050", "exact")."""

    tier: str
    config: str
    metric: str
    expected: float | None
    measured: float | None
    tolerance: str
    verdict: str          # pass | fail | suspect | info | not_run
    note: str = ""

    @property
    def delta(self) -> float | None:
        if self.expected is None or self.measured is None:
            return None
        return self.measured - self.expected


@dataclass(frozen=True)
class TierResult:
    """The checks of one tier for one config, or the reason there are none (`not_run`)."""

    tier: str
    config: str
    path: str
    rows: tuple = ()
    not_run: str = ""

    @property
    def ran(self) -> bool:
        return not self.not_run

    def failed(self, suspect_fails: bool = False) -> bool:
        bad = {"fail", "suspect"} if suspect_fails else {"fail"}
        return any(r.verdict in bad for r in self.rows)


@dataclass(frozen=True)
class GateInputs:
    """Everything the gates read: the published table, the metrics directory and the smoke baseline."""

    published: dict
    metrics_dir: Path = METRICS_DIR
    baseline: dict | None = None
    baseline_path: str = "reports/baselines/smoke.json"
    platform: dict = field(default_factory=dict)
    reference: dict | None = None
    reference_path: str = "reports/reference/smoke.json"


def load_inputs(metrics_dir=METRICS_DIR, published_path=PUBLISHED_PATH, baseline_path=None,
                rev: str | None = None, platform: dict | None = None) -> GateInputs:
    """Read the published table and the baseline (at git revision `rev` if given)."""
    import yaml

    with open(published_path) as f:
        published = yaml.safe_load(f)
    baseline_path = str(baseline_path or published["tolerances"]["S"]["baseline"])
    reference_path = str(published["tolerances"].get("E", {}).get("reference", "reports/reference/smoke.json"))
    return GateInputs(published=published, metrics_dir=Path(metrics_dir),
                      baseline=baseline.read(baseline_path, rev), baseline_path=baseline_path,
                      platform=platform if platform is not None else machine.fingerprint(),
                      reference=read_record(reference_path), reference_path=reference_path)


def metrics_path(metrics_dir, tier: str, name: str) -> Path:
    """The metrics file a tier reads for config `name`."""
    prefix = {"A": "published_", "E": "reference_"}.get(tier, "")
    return Path(metrics_dir) / f"{prefix}{name}.json"


def read_record(path) -> dict | None:
    """A metrics file's mapping, or None when it does not exist.

    Raises:
        InputFileError: the file is not a JSON object (damaged, truncated, hand-edited).
    """
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(f"{path}: damaged metrics file, not valid JSON ({e}); rerun the stage that "
                             f"writes it") from None
    if not isinstance(record, dict):
        raise InputFileError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def evaluate_tier(tier: str, name: str, inputs: GateInputs) -> TierResult:
    """Run one tier's checks for one config; a missing or mismatched metrics file gives `not_run`."""
    path = metrics_path(inputs.metrics_dir, tier, name)
    record = read_record(path)
    want_profile, want_source = ("smoke", "trained") if tier == "S" else ("full", "trained")
    if tier == "A":
        want_source = "published"
    if tier == "E":
        want_profile, want_source = "smoke", "reference"
    why = _not_run_reason(tier, path, record, want_profile, want_source)
    if not why and tier == "S" and inputs.baseline is None:
        why = (f"no smoke baseline at {inputs.baseline_path}: create it with `repro baseline --seeds 0 1 2` "
               f"and commit it")
    if not why and tier == "E":
        why = reference_missing(name, inputs)
    if why:
        return TierResult(tier, name, str(path), not_run=why)
    from repro.report import subset_tier   # here: subset_tier builds on this module's Row
    if tier == "A" and subset_tier.is_subset(record):   # a val subset is never the published protocol
        return TierResult(subset_tier.TIER, name, str(path), rows=tuple(subset_tier.checks(name, record, inputs.published)))
    if tier == "S":   # measured: the baseline entry of the precision this model trained in must hold it
        entry, missing = baseline.precision_entry(inputs.baseline, record.get("train_precision"),
                                                  inputs.baseline_path)
        if not missing and name not in entry["configs"]:
            missing = f"the baseline {inputs.baseline_path} has no entry for {name}: refresh it with `repro baseline`"
        if missing:
            return TierResult(tier, name, str(path), rows=(Row(
                "S", name, "baseline", None, None, "present", "fail", missing),))
    tol = inputs.published["tolerances"][tier]
    if tier == "S":
        rows = tier_s_rows(name, record, entry, tol, inputs.platform)
    elif tier == "E":
        rows = tier_e_rows(name, record, inputs.reference, tol)
    else:
        expected = inputs.published["models"][name]["results"]
        check = tier_a_rows if tier == "A" else tier_c_rows
        rows = [*check(name, record, expected, tol), *protocol_rows(tier, name, record, inputs.published)]
    return TierResult(tier, name, str(path), rows=tuple(rows))


def _not_run_reason(tier, path, record, want_profile, want_source) -> str:
    if record is None:
        how = {"A": "the full profile: dvc exp run -S profile=full evaluate_published",
               "C": "a full retrain: dvc exp run -S profile=full",
               "S": "the smoke pipeline: scripts/repro.sh",
               "E": "the smoke pipeline's evaluate_reference stage: dvc repro evaluate_reference"}[tier]
        return f"{path} does not exist (tier {tier} needs {how})"
    if record.get("status") == "not_run":
        return f"{path}: not run: {record.get('reason', 'no reason given')}"
    if record.get("profile") != want_profile:
        return f"{path} is from profile {record.get('profile')!r}; tier {tier} needs profile {want_profile!r}"
    if record.get("source") != want_source:
        return f"{path} has source {record.get('source')!r}; tier {tier} needs {want_source!r}"
    if record.get("protocol") == "subset" and tier != "A":   # tier A judges a subset as A-subset
        return f"{path} is a val subset (eval.val_images {record['subset']['n']}); tier {tier} needs every image"
    return ""


def metric_value(record: dict, metric: str):
    """A numeric metric from a metrics record, or None when absent, not a number or not finite (NaN, Inf)."""
    value = record.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return value


def missing_note(record: dict, metric: str) -> str:
    """Why `metric_value` gave None: absent, or the value that is not a finite number."""
    return "missing from the metrics" if metric not in record else f"not a finite number: {record[metric]!r}"


def tier_a_rows(name: str, record: dict, expected: dict, tol: dict) -> list:
    """Every published stat within ±ap_abs (AP) or ±other_abs (the rest)."""
    rows = []
    for metric, want in expected.items():
        bound = tol["ap_abs"] if metric == "AP" else tol["other_abs"]
        got = metric_value(record, metric)
        if got is None:
            rows.append(Row("A", name, metric, want, None, f"±{bound:.4f}", "fail", missing_note(record, metric)))
            continue
        verdict = "pass" if abs(got - want) <= bound + EPS else "fail"
        rows.append(Row("A", name, metric, want, got, f"±{bound:.4f}", verdict))
    return rows


def tier_c_rows(name: str, record: dict, expected: dict, tol: dict) -> list:
    """AP at least published - ap_below ("suspect" above published + ap_suspect_above); others reported."""
    rows = []
    for metric, want in expected.items():
        got = metric_value(record, metric)
        rule = f">= -{tol['ap_below']:.4f}" if metric == "AP" else "reported"
        if got is None:   # a broken number fails even where the value itself is only reported
            rows.append(Row("C", name, metric, want, None, rule, "fail", missing_note(record, metric)))
        elif metric != "AP":
            rows.append(Row("C", name, metric, want, got, rule, "info"))
        elif got < want - tol["ap_below"] - EPS:
            rows.append(Row("C", name, metric, want, got, rule, "fail"))
        elif got > want + tol["ap_suspect_above"] + EPS:
            rows.append(Row("C", name, metric, want, got, rule, "suspect",
                            f"more than {tol['ap_suspect_above']:.3f} above the table: check the eval "
                            f"settings (GT boxes instead of detections give +0.015..0.020)"))
        else:
            rows.append(Row("C", name, metric, want, got, rule, "pass"))
    return rows


def protocol_rows(tier: str, name: str, record: dict, published: dict) -> list:
    """The metrics file's eval settings must be the published ones, or its numbers are not comparable."""
    settings, used = published["eval_settings"], record.get("eval")
    if not isinstance(used, dict):
        return [Row(tier, name, "protocol", None, None, "published", "info", "no eval settings recorded")]
    diffs = []
    for ours, theirs in PROTOCOL.items():
        want = settings[theirs[0]][theirs[1]] if isinstance(theirs, tuple) else settings[theirs]
        if ours in used and used[ours] != want:
            diffs.append(f"{ours}={used[ours]!r} (published {want!r})")
    if used.get("use_gt_bbox"):
        diffs.append("use_gt_bbox=True (published: detected boxes)")
    if used.get("amp", "none") != "none":
        diffs.append(f"amp={used['amp']!r} (published: fp32)")
    return [Row(tier, name, "protocol", None, None, "published", "fail" if diffs else "pass", "; ".join(diffs))]


def tier_s_rows(name: str, record: dict, base: dict, tol: dict, platform: dict) -> list:
    """Each baseline metric within its measured tolerance of the baseline mean, plus the exact-seed check."""
    entry, rows = base["configs"][name], []
    for metric, stats in entry.items():
        got, want, bound = metric_value(record, metric), stats["mean"], stats["tolerance"]
        rule = "exact" if bound == 0 else f"±{_fmt(float(bound), metric)}"
        if got is None:
            rows.append(Row("S", name, metric, want, None, rule, "fail", missing_note(record, metric)))
            continue
        rows.append(Row("S", name, metric, want, got, rule, "pass" if abs(got - want) <= bound + EPS else "fail"))
    if tol.get("exact_same_platform", True):
        rows.append(exact_seed_row(name, record, base, platform))
    return rows


def reference_missing(name: str, inputs: GateInputs) -> str:
    """Why tier E cannot check `name` against the committed reference ("" when it can)."""
    if inputs.reference is None:
        return f"{inputs.reference_path} does not exist (make it with `repro reference`)"
    if name not in inputs.reference.get("configs", {}):
        return f"{inputs.reference_path} has no reference for {name}"
    return ""


def tier_e_rows(name: str, record: dict, reference: dict, tol: dict) -> list:
    """Each of the 10 stats within ±ap_abs / ±other_abs of the committed ones, the golden-predictions diff
    and the val data digests (the data must be the reference's, or nothing else is comparable)."""
    entry, rows = reference["configs"][name], []
    for metric, want in entry["stats"].items():
        if metric.startswith("num_"):
            continue
        bound = tol["ap_abs"] if metric == "AP" else tol["other_abs"]
        got = metric_value(record, metric)
        ok = got is not None and metric_value(entry["stats"], metric) is not None and abs(got - want) <= bound + EPS
        rows.append(Row("E", name, metric, want, got, f"±{bound:.4f}", "pass" if ok else "fail",
                        "" if got is not None else "missing from the metrics"))
    return [*rows, golden_row(name, record, entry, tol), data_row(name, record, reference)]


def golden_row(name: str, record: dict, entry: dict, tol: dict) -> Row:
    """The new predictions against the committed golden ones (repro.evaluation.golden); the note names what moved."""
    from repro.evaluation import golden
    rule = f"<= {tol['max_changed_fraction']:.2%} changed, <= {tol['max_unmatched']} unmatched"  # keypoints, instances
    try:
        gold, new = (json.loads(Path(p).read_text()) for p in (entry["predictions"], record["predictions"]))
    except (KeyError, OSError, ValueError) as e:
        return Row("E", name, "golden", None, None, rule, "fail", f"cannot read the predictions: {e}")
    d = golden.diff(gold, new, tol["keypoint_px"], tol["score_abs"])
    unmatched = d["only_golden"] + d["only_new"]
    worst = max(d["changed_fraction"], d["changed_instance_fraction"])
    ok = worst <= tol["max_changed_fraction"] and unmatched <= tol["max_unmatched"]
    note = (f"{d['changed_keypoints']}/{d['num_keypoints']} keypoints changed (max {d['max_keypoint_px']:.3f}px), "
            f"{d['changed_instances']} instances, max |score delta| {d['max_score_abs']:.2e}, "
            f"{d['only_golden']} only in golden, {d['only_new']} only in new")
    first = golden.describe_first(d)
    return Row("E", name, "golden", 0.0, worst, rule, "pass" if ok else "fail",
               note + (f"; first: {first}" if first else ""))


def data_row(name: str, record: dict, reference: dict) -> Row:
    """The val data evaluated must be byte-identical to the reference's (annotations, images, det file)."""
    want, got = reference.get("data") or {}, record.get("data") or {}
    differ = [k for k in want if got.get(k) != want[k]] if want else ["the reference records no data digests"]
    note = f"data differ: {', '.join(differ)} (synthetic data made on another CPU or by other code?)" if differ else ""
    return Row("E", name, "data", None, None, "sha256 equal", "fail" if differ else "pass", note)


def exact_seed_row(name: str, record: dict, base: dict, platform: dict) -> Row:
    """Same seed on the same platform must give the baseline's metrics bit for bit (deterministic CPU run)."""
    seed = record.get("seed")
    label = f"exact(seed={seed})"
    here = record.get("platform") or platform
    if here != base.get("platform"):
        return Row("S", name, label, None, None, "exact", "not_run",
                   f"platform differs: baseline {base.get('platform')}, here {here}")
    if seed is None or str(seed) not in next(iter(base["configs"][name].values()))["per_seed"]:
        return Row("S", name, label, None, None, "exact", "not_run",
                   f"seed {seed} is not one of the baseline seeds {base.get('seeds')}")
    differ = [f"{m} {metric_value(record, m)!r} != {s['per_seed'][str(seed)]!r}"
              for m, s in base["configs"][name].items() if metric_value(record, m) != s["per_seed"][str(seed)]]
    return Row("S", name, label, None, None, "exact", "fail" if differ else "pass", "; ".join(differ))


def evaluate(inputs: GateInputs, tiers=TIERS, names=None) -> list:
    """Every requested tier for every config (default: the published table's configs), in a stable order."""
    names = list(names or inputs.published["models"])
    return [evaluate_tier(tier, name, inputs) for tier in tiers for name in names]


def strict_enabled(flag: bool = False) -> bool:
    return flag or config.strict_gates()


def required_tiers(profile: str, tiers=None) -> tuple:
    """--tier if given, else REPRO_GATE_TIERS, else the profile's own tiers."""
    if tiers:
        return tuple(tiers)
    env = config.gate_tiers()
    return tuple(env) if env else PROFILE_TIERS[profile]


def failures(results, required, strict: bool, suspect_fails: bool = False) -> list:
    """Why the gate fails (empty: it passes): failing rows, and in strict mode required tiers not run."""
    out = [f"{r.tier} {r.config} {row.metric}: {row.verdict} {row.note}".rstrip()
           for r in results if r.failed(suspect_fails)
           for row in r.rows if row.verdict in ({"fail", "suspect"} if suspect_fails else {"fail"})]
    if strict:   # a subset too small to detect 0.02 AP (tier A-subset) proves nothing: strict fails it
        out += [f"{r.tier} {r.config} {row.metric}: too_small {row.note}" for r in results for row in r.rows
                if row.verdict == "too_small"]
        out += [f"{r.tier} {r.config}: required tier not run: {r.not_run}"
                for r in results if r.tier in required and not r.ran]
    if not any(r.ran for r in results):
        out.append("no tier ran: nothing was measured, so nothing can pass")
    return out


# ---------------------------------------------------------------------------------------------- tables
COLUMNS = ("tier", "config", "metric", "expected", "measured", "delta", "tolerance", "verdict", "note")


def _fmt(value, metric: str = "", sign: str = "") -> str:
    """A number as the tables show it: 4 decimals (COCO stats), 6 for the training loss (about 0.01)."""
    if value is None:
        return "-"
    digits = 6 if metric in baseline.LOSS_KEYS else 4
    return f"{value:{sign}.{digits}f}" if isinstance(value, float) else str(value)


def row_cells(row: Row) -> list:
    delta = _fmt(row.delta, row.metric, "+")
    return [row.tier, row.config, row.metric, _fmt(row.expected, row.metric), _fmt(row.measured, row.metric), delta,
            row.tolerance, row.verdict, row.note]


def status_rows(results) -> list:
    """One line per tier and config: ran or not, and why not."""
    return [[r.tier, r.config, "ran" if r.ran else "not_run", r.path, r.not_run] for r in results]


def render(header, rows, markdown: bool = False) -> str:
    """A fixed-column table: aligned plain text, or GitHub markdown."""
    rows = [[str(c).replace("|", "\\|") if markdown else str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)]) + "\n"


def render_results(results, markdown: bool = False) -> str:
    """The check table for every tier that ran, then which tiers ran and which did not, and why."""
    checks = [row_cells(row) for r in results for row in r.rows]
    text = render(COLUMNS, checks, markdown) if checks else "(no checks: no tier ran)\n"
    return text + "\n" + render(("tier", "config", "status", "metrics file", "reason"),
                                status_rows(results), markdown)


# ---------------------------------------------------------------------------------------------- mains
def _common_args(parser):
    parser.add_argument("--metrics-dir", default=str(METRICS_DIR))
    parser.add_argument("--published", default=str(PUBLISHED_PATH))
    parser.add_argument("--baseline", default=None, help="default: published.yaml tolerances.S.baseline")
    parser.add_argument("--params", default="params.yaml", help="read for the profile (or REPRO_PROFILE)")


def current_profile(params_path) -> str:
    if config.env_profile():
        return config.env_profile()
    import yaml

    try:
        with open(params_path) as f:
            return yaml.safe_load(f).get("profile", "smoke")
    except FileNotFoundError:
        return "smoke"


def gate_main(argv=None) -> int:
    """`repro gate`: print every check; exit 1 on a failing check (strict: also a required tier not run)."""
    parser = argparse.ArgumentParser(prog="repro gate", description=gate_main.__doc__)
    _common_args(parser)
    parser.add_argument("--strict", action="store_true", help=f"or {STRICT_ENV}=1")
    parser.add_argument("--tier", nargs="+", choices=TIERS, help="the tiers to check (and require)")
    parser.add_argument("--summary", help="append the markdown table here (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--require-equivalence", action="store_true",
                        help="also fail unless the seed ledger's mean AP is TOST-equivalent (tiers C, S)")
    args = parser.parse_args(argv)
    inputs = load_inputs(args.metrics_dir, args.published, args.baseline)
    required = required_tiers(current_profile(args.params), args.tier)
    results = evaluate(inputs, args.tier or TIERS)
    strict = strict_enabled(args.strict)
    problems = failures(results, required, strict, inputs.published["tolerances"]["C"]["suspect_fails"])
    print(render_results(results))
    equiv = equivalences(inputs, args.tier or required)
    if equiv:
        print(f"\nEquivalence over retrains (seed ledger, TOST at alpha {EQUIVALENCE_ALPHA}):")
        print(render_equivalence(equiv))
    if args.require_equivalence:
        problems += [f"{e['tier']} {e['config']} equivalence: {e['verdict']}" for e in equiv
                     if e["verdict"] != "equivalent"]
    if args.summary:
        with open(args.summary, "a") as f:
            f.write("## Gates\n\n" + render_results(results, markdown=True) + "\n")
            if equiv:
                f.write("### Equivalence over retrains (seed ledger)\n\n" + render_equivalence(equiv, True) + "\n")
    mode = f"strict, required tiers {', '.join(required)}" if strict else "not strict"
    print(f"gate ({mode}): " + ("FAIL\n  " + "\n  ".join(problems) if problems else "pass"))
    return 1 if problems else 0


def drift_configs(inputs: GateInputs) -> list:
    """The union of the baseline's configs and those with a metrics file (<name>.json, not published_*)."""
    measured = {p.stem for p in Path(inputs.metrics_dir).glob("*.json") if not p.name.startswith("published_")}
    in_baseline = {n for entry in inputs.baseline.get("precisions", {}).values() for n in entry["configs"]}
    return sorted(in_baseline | measured)


def drift_rows(inputs: GateInputs, names=None) -> list:
    """[path, metric, old (baseline mean), new, change, tolerance, verdict] per baseline metric, against the
    baseline entry of each metrics file's training precision (fp32 when the file does not say).

    A config on one side only is a row of its own: "missing" (no metrics) or "not in baseline".
    """
    rows = []
    entries = inputs.baseline.get("precisions", {})
    for name in names or drift_configs(inputs):
        path = metrics_path(inputs.metrics_dir, "S", name)
        record = read_record(path) or {}
        entry = entries.get(record.get("train_precision") or "fp32", {}).get("configs", {})
        if name not in entry:
            rows.append([str(path), "-", "-", _fmt(metric_value(record, "AP")), "-", "-", "not in baseline"])
            continue
        smoke = record.get("profile") == "smoke"
        for metric, stats in entry[name].items():
            new = metric_value(record, metric) if smoke else None
            change = None if new is None else new - stats["mean"]
            ok = change is not None and abs(change) <= stats["tolerance"] + EPS
            missing = "not smoke" if record.get("profile") not in (None, "smoke") else "missing"
            rows.append([str(path), metric, _fmt(float(stats["mean"]), metric), _fmt(new, metric),
                         _fmt(change, metric, "+"), _fmt(float(stats["tolerance"]), metric),
                         "ok" if ok else (missing if new is None else "DRIFT")])
    return rows


def drift_main(argv=None) -> int:
    """`repro drift`: current smoke metrics against the baseline (working tree or --rev); exit 1 past tolerance."""
    parser = argparse.ArgumentParser(prog="repro drift", description=drift_main.__doc__)
    _common_args(parser)
    parser.add_argument("--rev", help="read the baseline at this git revision (git show REV:path)")
    args = parser.parse_args(argv)
    inputs = load_inputs(args.metrics_dir, args.published, args.baseline, rev=args.rev)
    where = f"{inputs.baseline_path}@{args.rev}" if args.rev else inputs.baseline_path
    if inputs.baseline is None:
        print(f"repro drift: no baseline at {where}", file=sys.stderr)
        return 2
    rows = drift_rows(inputs)
    seeds = {p: e.get("seeds") for p, e in inputs.baseline.get("precisions", {}).items()}
    print(f"old: {where} (mean over seeds {seeds}); new: {inputs.metrics_dir}/")
    print(render(("Path", "Metric", "Old", "New", "Change", "Tolerance", "Verdict"), rows))
    bad = [r for r in rows if r[-1] != "ok"]
    print(f"drift: {len(bad)} of {len(rows)} metrics past tolerance or missing" if bad else "drift: none")
    return 1 if bad else 0


def baseline_main(argv, run_smoke) -> int:
    """`repro baseline`: rerun the smoke pipeline per seed and precision and write the baseline with its spread.

    Args:
        argv: command-line arguments (--seeds, --precisions, --out, --published).
        run_smoke: (seed, amp) -> {config name -> metrics} (the CLI passes repro.pipeline's; tests inject runs).
    """
    parser = argparse.ArgumentParser(prog="repro baseline", description=baseline_main.__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--precisions", nargs="+", choices=sorted(PRECISION_AMP),
                        help="training precisions to measure (default: fp32, plus bf16 where this CPU has it "
                             "natively); entries of other precisions in the file are kept")
    parser.add_argument("--out", default=None, help="default: published.yaml tolerances.S.baseline")
    parser.add_argument("--published", default=str(PUBLISHED_PATH))
    parser.add_argument("--ledger", default=None, help="seed ledger directory (default: reports/ledger)")
    args = parser.parse_args(argv)
    inputs = load_inputs(published_path=args.published, baseline_path=args.out, platform={})
    tier_s = inputs.published["tolerances"]["S"]
    if len(set(args.seeds)) < int(tier_s["min_seeds"]):
        parser.error(f"need at least {tier_s['min_seeds']} distinct seeds to measure a spread")
    precisions = args.precisions or ["fp32", *(["bf16"] if machine.native_bf16("cpu") else [])]
    # The seeds of the precision the default run trains in here are retrains of it: the seed ledger keeps them,
    # so that tier S equivalence (TOST over seeds) has them without rerunning the pipeline per seed.
    default_precision = machine.precision_name(machine.resolve_amp("auto", "cpu"))
    from repro.evaluation import ledger
    # The code measured is the tree as it is now: asked per entry, git would see this command's own first
    # ledger write and label the later entries "+dirty".
    commit = ledger.git_commit()
    base, rows = inputs.baseline, []
    for precision in precisions:
        amp = PRECISION_AMP[precision]
        runs = baseline.run_seeds(sorted(set(args.seeds)), lambda seed: run_smoke(seed, amp))
        entry = baseline.derive_baseline(runs, inputs.published["metric_names"], tier_s, machine.fingerprint())
        if precision == default_precision:
            for records in runs.values():
                for name, record in records.items():
                    path = ledger.append(args.ledger or ledger.LEDGER_DIR, {**record, "config": name},
                                         inputs.published["metric_names"], commit)
            print(f"seed ledger: {precision} seeds {sorted(runs)} recorded in {path.parent}")
        base = baseline.with_entry(base, precision, entry)
        rows += [[precision, n, m, f"{s['mean']:.4f}", f"{s['std']:.4f}", f"{s['range']:.4f}",
                  f"{s['tolerance']:.4f}"] for n, e in entry["configs"].items() for m, s in e.items()]
    atomic.write_json(inputs.baseline_path, base)
    print(render(("precision", "config", "metric", "mean", "std", "range", "tolerance"), rows))
    print(f"wrote {inputs.baseline_path} ({', '.join(precisions)}, seeds {sorted(set(args.seeds))}); "
          f"review the diff and commit it")
    return 0


# ------------------------------------------------------------------------- seed ledger: equivalence (C, S)
# Over N retrains (reports/ledger, repro/evaluation/ledger.py): TOST of the mean AP against the tier's reference.
LEDGER_PROFILES = {"C": "full", "S": "smoke"}
EQUIVALENCE_ALPHA = 0.05


def equivalence_reference(tier: str, name: str, inputs: GateInputs) -> tuple:
    """(reference AP, margin, what the reference is): tier C the published AP ± tolerances.C.ap_below;
    tier S the smoke baseline's mean AP ± its measured AP tolerance. (None, None, why) without one."""
    if tier == "C":
        return (inputs.published["models"][name]["results"]["AP"], inputs.published["tolerances"]["C"]["ap_below"],
                "published AP")
    # The baseline entry of the precision the smoke runs train in here (the latest metrics file says which).
    record = read_record(metrics_path(inputs.metrics_dir, "S", name)) or {}
    precision = record.get("train_precision") or machine.precision_name(machine.resolve_amp("auto", "cpu"))
    entry = (inputs.baseline or {}).get("precisions", {}).get(precision, {}).get("configs", {}).get(name)
    if entry is None:
        return None, None, f"no {precision} smoke baseline entry for {name} in {inputs.baseline_path}"
    return entry["AP"]["mean"], entry["AP"]["tolerance"], f"smoke baseline mean, {precision} ({inputs.baseline_path})"


def equivalence(tier: str, name: str, inputs: GateInputs, ledger_dir=None) -> dict:
    """TOST of the ledger's per-seed AP for `tier` and config `name` (ledger_dir default: beside metrics_dir).

    Returns:
        {"tier", "config", "ledger", "seeds", "reference_is", "n", "mean", "std", "reference", "margin",
        "alpha", "ci_low", "ci_high", "p_value", "verdict"}; verdict not_enough_seeds below 2 seeds.
    """
    from repro.evaluation import ledger
    from repro.report import tost
    ledger_dir = Path(ledger_dir) if ledger_dir else Path(inputs.metrics_dir).parent / "ledger"
    path = ledger.ledger_path(ledger_dir, LEDGER_PROFILES[tier], name)
    per_seed = ledger.values_by_seed(ledger.read(path))
    reference, margin, what = equivalence_reference(tier, name, inputs)
    head = {"tier": tier, "config": name, "ledger": str(path), "seeds": sorted(per_seed), "reference_is": what}
    if reference is None:
        return {**head, "n": len(per_seed), "mean": None, "std": None, "reference": None, "margin": None,
                "alpha": EQUIVALENCE_ALPHA, "ci_low": None, "ci_high": None, "p_value": None, "verdict": "not_run"}
    result = tost.tost(list(per_seed.values()), reference, margin, EQUIVALENCE_ALPHA)
    return {**head, **dataclasses.asdict(result)}


def equivalences(inputs: GateInputs, tiers=TIERS, names=None) -> list:
    """`equivalence` for every ledger tier among `tiers` (C, S) and every config."""
    names = list(names or inputs.published["models"])
    return [equivalence(t, n, inputs) for t in tiers if t in LEDGER_PROFILES for n in names]


EQUIVALENCE_COLUMNS = ("tier", "config", "seeds", "mean AP", "std", "reference", "margin",
                       "90% CI", "p (TOST)", "verdict")


def equivalence_cells(e: dict) -> list:
    ci = "-" if e["ci_low"] is None else f"[{e['ci_low']:.4f}, {e['ci_high']:.4f}]"
    p = "-" if e["p_value"] is None else f"{e['p_value']:.4f}"
    return [e["tier"], e["config"], f"{len(e['seeds'])} {e['seeds']}", _fmt(e["mean"]), _fmt(e["std"]),
            f"{_fmt(e['reference'])} ({e['reference_is']})", _fmt(e["margin"]), ci, p, e["verdict"]]


def render_equivalence(rows: list, markdown: bool = False) -> str:
    """The equivalence table (one row per tier and config)."""
    return render(EQUIVALENCE_COLUMNS, [equivalence_cells(e) for e in rows], markdown)
