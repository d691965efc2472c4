"""The checks of each gate tier: a metrics record against what the tier expects, as rows of verdicts.

Which tier reads which record, and how its checks are run and combined, is repro/report/tiers.py; the tolerances
and their justification are repro/published.yaml `tolerances`. Every check function has the signature
`(name, record, inputs) -> [Row]`. A metric that is missing or not a finite number (NaN, Inf) fails.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from repro import config, machine, records
from repro.report import baseline, tables

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
    metrics_dir: Path = records.METRICS_DIR
    baseline: dict | None = None
    baseline_path: str = "reports/baselines/smoke.json"
    # the platform of records that carry none; None: this machine's, read only then (compare imports no torch)
    platform: dict | None = field(default_factory=dict)
    reference: dict | None = None
    reference_path: str = "reports/reference/smoke.json"


def load_inputs(metrics_dir=records.METRICS_DIR, published_path=config.PUBLISHED_PATH, baseline_path=None,
                rev: str | None = None, platform: dict | None = None) -> GateInputs:
    """Read the published table and the baseline (at git revision `rev` if given)."""
    published = config.published(published_path)
    baseline_path = str(baseline_path or published["tolerances"]["S"]["baseline"])
    reference_path = str(published["tolerances"]["E"]["reference"])
    return GateInputs(published=published, metrics_dir=Path(metrics_dir),
                      baseline=baseline.read(baseline_path, rev), baseline_path=baseline_path,
                      platform=platform,
                      reference=records.read(reference_path), reference_path=reference_path)


def metric_value(record: dict, metric: str):
    """A numeric metric from a metrics record, or None when absent, not a number or not finite (NaN, Inf)."""
    value = record.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return value


def missing_note(record: dict, metric: str) -> str:
    """Why `metric_value` gave None: absent, or the value that is not a finite number."""
    return "missing from the metrics" if metric not in record else f"not a finite number: {record[metric]!r}"


def tolerance(inputs: GateInputs, tier: str) -> dict:
    return inputs.published["tolerances"][tier]


def check_a(name: str, record: dict, inputs: GateInputs) -> list:
    """Every published stat within ±ap_abs (AP) or ±other_abs (the rest), and the published protocol."""
    expected, tol, rows = inputs.published["models"][name]["results"], tolerance(inputs, "A"), []
    for metric, want in expected.items():
        bound = tol["ap_abs"] if metric == "AP" else tol["other_abs"]
        got = metric_value(record, metric)
        if got is None:
            rows.append(Row("A", name, metric, want, None, f"±{bound:.4f}", "fail", missing_note(record, metric)))
            continue
        verdict = "pass" if abs(got - want) <= bound + EPS else "fail"
        rows.append(Row("A", name, metric, want, got, f"±{bound:.4f}", verdict))
    return [*rows, *protocol_rows("A", name, record, inputs.published)]


def check_c(name: str, record: dict, inputs: GateInputs) -> list:
    """AP at least published - ap_below ("suspect" above published + ap_suspect_above), others reported, and
    the published protocol."""
    expected, tol, rows = inputs.published["models"][name]["results"], tolerance(inputs, "C"), []
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
    return [*rows, *protocol_rows("C", name, record, inputs.published)]


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


def baseline_missing(name: str, inputs: GateInputs) -> str:
    """Why tier S has no baseline to check against ("" when it has one)."""
    if inputs.baseline is None:
        return (f"no smoke baseline at {inputs.baseline_path}: create it with `repro baseline --seeds 0 1 2` "
                f"and commit it")
    return ""


def check_s(name: str, record: dict, inputs: GateInputs) -> list:
    """Each metric of the baseline entry of the precision this model trained in within its measured tolerance
    of the baseline mean, plus the exact-seed check; a baseline without that entry fails."""
    base, missing = baseline.precision_entry(inputs.baseline, record.get("train_precision"), inputs.baseline_path)
    if not missing and name not in base["configs"]:
        missing = f"the baseline {inputs.baseline_path} has no entry for {name}: refresh it with `repro baseline`"
    if missing:
        return [Row("S", name, "baseline", None, None, "present", "fail", missing)]
    entry, rows = base["configs"][name], []
    for metric, stats in entry.items():
        got, want, bound = metric_value(record, metric), stats["mean"], stats["tolerance"]
        rule = "exact" if bound == 0 else f"±{tables.fmt(float(bound), metric)}"
        if got is None:
            rows.append(Row("S", name, metric, want, None, rule, "fail", missing_note(record, metric)))
            continue
        rows.append(Row("S", name, metric, want, got, rule, "pass" if abs(got - want) <= bound + EPS else "fail"))
    if tolerance(inputs, "S").get("exact_same_platform", True):
        rows.append(exact_seed_row(name, record, base, inputs.platform))
    return rows


def reference_missing(name: str, inputs: GateInputs) -> str:
    """Why tier E cannot check `name` against the committed reference ("" when it can)."""
    if inputs.reference is None:
        return f"{inputs.reference_path} does not exist (make it with `repro reference`)"
    if name not in inputs.reference.get("configs", {}):
        return f"{inputs.reference_path} has no reference for {name}"
    return ""


def check_e(name: str, record: dict, inputs: GateInputs) -> list:
    """Each of the 10 stats within ±ap_abs / ±other_abs of the committed ones, the golden-predictions diff
    and the val data digests (the data must be the reference's, or nothing else is comparable)."""
    reference, tol = inputs.reference, tolerance(inputs, "E")
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


def exact_seed_row(name: str, record: dict, base: dict, platform: dict | None) -> Row:
    """Same seed on the same platform must give the baseline's metrics bit for bit (deterministic CPU run)."""
    seed = record.get("seed")
    label = f"exact(seed={seed})"
    here = record.get("platform") or (machine.fingerprint() if platform is None else platform)
    if here != base.get("platform"):
        return Row("S", name, label, None, None, "exact", "not_run",
                   f"platform differs: baseline {base.get('platform')}, here {here}")
    if seed is None or str(seed) not in next(iter(base["configs"][name].values()))["per_seed"]:
        return Row("S", name, label, None, None, "exact", "not_run",
                   f"seed {seed} is not one of the baseline seeds {base.get('seeds')}")
    differ = [f"{m} {metric_value(record, m)!r} != {s['per_seed'][str(seed)]!r}"
              for m, s in base["configs"][name].items() if metric_value(record, m) != s["per_seed"][str(seed)]]
    return Row("S", name, label, None, None, "exact", "fail" if differ else "pass", "; ".join(differ))


