"""Tier A-subset: a published checkpoint evaluated on a seeded subset of val2017 (eval.val_images: N).

A subset's AP is not the full-val AP, so a fixed tolerance around the published number is either blind or
flaky. Instead each stat carries a bootstrap interval over images (repro.evaluation.bootstrap, 95%
percentile, recorded in the metrics file), and the check passes when the published full-val number lies in
that interval widened by tier A's tolerance. A subset whose smallest detectable AP gap (80% power) is over
MAX_DETECTABLE_GAP says "too_small", never "pass": it could not have caught a 2-AP regression.

    rows = subset_rows("256x192", record, published["models"]["256x192"]["results"], tolerances["A"])
"""
from repro.report.checks import EPS, Row, metric_value, missing_note, protocol_rows

TIER = "A-subset"
MAX_DETECTABLE_GAP = 0.02   # AP: a flip-shift bug costs ~0.02 (spec §8); a check blind to it proves nothing


def is_subset(record: dict | None) -> bool:
    """A metrics record of a subset run (never the published protocol)."""
    return bool(record) and record.get("protocol") == "subset"


def checks(name: str, record: dict, published: dict) -> list:
    """The stat rows and the protocol row. bf16 inference (eval.amp, chosen for CPU speed) is reported as
    an `open` info row, not as a protocol failure: it moves AP by far less than a subset's interval width."""
    amp = (record.get("eval") or {}).get("amp", "none")
    fp32 = {**record, "eval": {**(record.get("eval") or {}), "amp": "none"}}
    rows = [*subset_rows(name, record, published["models"][name]["results"], published["tolerances"]["A"]),
            *protocol_rows(TIER, name, fp32, published)]
    if amp != "none":
        rows.append(Row(TIER, name, "precision", None, None, "fp32", "info", f"open: eval.amp={amp!r} (published fp32)"))
    return rows


def subset_rows(name: str, record: dict, expected: dict, tol: dict) -> list:
    """One Row per published stat: pass / fail against the widened interval, or too_small for them all
    when the AP interval cannot detect MAX_DETECTABLE_GAP."""
    boot = record.get("bootstrap") or {}
    intervals = boot.get("stats") or {}
    ap_gap = (intervals.get("AP") or {}).get("detectable_gap")
    if ap_gap is None:
        return [Row(TIER, name, "bootstrap", None, None, "interval", "fail",
                    "the subset record has no bootstrap interval (bootstrap.stats.AP)")]
    too_small = ap_gap > MAX_DETECTABLE_GAP + EPS
    rows = []
    for metric, want in expected.items():
        bound = tol["ap_abs"] if metric == "AP" else tol["other_abs"]
        got, ci = metric_value(record, metric), intervals.get(metric)
        if got is None or ci is None:
            rows.append(Row(TIER, name, metric, want, None, "interval", "fail",
                            missing_note(record, metric) if got is None else "no bootstrap interval"))
            continue
        lo, hi = ci["lo"] - bound, ci["hi"] + bound
        note = (f"95% CI [{ci['lo']:.4f}, {ci['hi']:.4f}] width {ci['hi'] - ci['lo']:.4f}, "
                f"detectable gap {ci['detectable_gap']:.4f}; {record['subset']['n']} images")
        verdict = "pass" if lo - EPS <= want <= hi + EPS else "fail"
        if too_small and verdict == "pass":
            verdict, note = "too_small", f"{note}: the AP gap it detects ({ap_gap:.4f}) is over {MAX_DETECTABLE_GAP}"
        rows.append(Row(TIER, name, metric, want, got, f"[{lo:.4f}, {hi:.4f}]", verdict, note))
    return rows
