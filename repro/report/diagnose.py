"""Diagnosis of an AP gap between two keypoint result files on the same ground truth.

    report = diagnose.diagnose("person_keypoints_val2017.json", "A/predictions.json", "B/predictions.json")
    diagnose.write_report(report, Path("reports/diagnosis/256x192"))   # diagnosis.{md,json}, keypoint_oks.png
    repro diagnose A.json B.json --gt ANN.json [--out reports/diagnosis]

A is the reference, B the candidate: a "loss" is OKS(A) - OKS(B), a "difference" is B - A.

For each file: AP per person size (pycocotools keypoint areas: all, medium 32^2-96^2, large > 96^2; COCO
keypoints have no "small"), mean keypoint similarity (ks) per keypoint over matched pairs, and the error
breakdown of Ronchi & Perona, "Benchmarking and Error Diagnosis in Multi-Instance Pose Estimation", ICCV
2017, as implemented in their coco-analyze toolkit (github matteorr/coco-analyze,
pycocotools/cocoanalyze.py, Params.setKpParams, _find_kpt_errors; analysisAPI/errorsAPImpact.py):

- Matching: detections are matched to ground truth (GT) people by pycocotools' greedy matching at OKS 0.1
  (`oksLocThrs = .1`); a matched pair's keypoints are analysed, an unmatched detection is a background
  false positive, an unmatched GT person (not crowd, num_keypoints > 0) a false negative.
- ks of a keypoint: exp(-d^2 / (2 sigma)^2 / area / 2) (COCO sigmas, that GT's area), against the same
  keypoint of every GT person in the image and of their left/right-flipped versions; the best one decides
  (`jitterKsThrs = [.5, .85]`), for each keypoint the matched GT has labelled (v > 0):
    good       best ks >= 0.85 on the matched person's own keypoint
    jitter     0.5 <= best ks < 0.85 on the matched person's own keypoint
    inversion  best ks >= 0.5 on the matched person's left/right-flipped keypoint
    swap       best ks >= 0.5 on another GT person's keypoint (flipped or not)
    miss       best ks < 0.5 everywhere
- AP recovered (errorsAPImpact): each type alone is corrected in every matched detection and the results
  are evaluated again with pycocotools; the AP difference to the uncorrected results is that type's
  share. A keypoint is corrected to the matched GT keypoint moved along x to a target ks: jitter to 0.85
  (just good), miss to 0.5 (just not missed), inversion and swap to the ks it had on the wrong keypoint.
  Background FP: the AP without them. False negatives: the AP with the unmatched GT people ignored, on
  top of removing the background FPs, minus the AP with only the FPs removed (an upper bound on what
  finding them could give).

Where this differs from the toolkit, on purpose:
- The correction distance uses COCO's variance (2 sigma)^2, so a corrected keypoint lands exactly on its
  target ks; the toolkit's `dist_to_oks_*` uses sigma^2 and lands at ks^(1/4) (jitter at 0.96, not 0.85).
- Background FPs and false negatives are those unmatched at OKS 0.1 for every evaluation threshold; the
  toolkit re-matches at each threshold 0.5..0.95 after correcting keypoints and scores, so its "false
  positives" at 0.95 include detections that are merely imprecise. Here the categories do not overlap.
- "good" includes ks == 0.85 (the toolkit leaves that single value unclassified).
- Person sizes are pycocotools' (all includes people under 32^2, as the reported COCO AP does); the
  toolkit's "all" starts at 32^2. The toolkit's scoring-error analysis (optimal rescoring) is not done.
"""
import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from repro import atomic, records
from repro.errors import InputFileError
from repro.report.plots import save_png
from repro.report.tables import render
from repro.keypoints import FLIP_INDICES, KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS

LOC_OKS = 0.1                 # cocoanalyze Params.oksLocThrs: a pair below this is not a localisation error
GOOD_KS, MISS_KS = 0.85, 0.5  # cocoanalyze Params.jitterKsThrs
KEYPOINT_ERRORS = ("jitter", "inversion", "swap", "miss")
ERRORS = KEYPOINT_ERRORS + ("background_fp", "false_negative")
SIZES = {"all": 0, "medium": 3, "large": 4}   # COCOeval.stats index of AP per person size
TOP_LOSSES = 10
DP = 4


class DiagnoseError(InputFileError):
    """A missing or malformed ground-truth or result file; the message names the file and the entry."""


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def load_ground_truth(path) -> COCO:
    """pycocotools COCO of a person_keypoints json, checked to be one."""
    path = Path(path)
    try:
        coco = _quiet(COCO, str(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DiagnoseError(f"{path}: not a readable COCO keypoint annotation file ({type(e).__name__}: {e})") \
            from None
    if not coco.getImgIds() or not any(c.get("keypoints") for c in coco.dataset.get("categories", [])):
        raise DiagnoseError(f"{path}: not COCO keypoint ground truth (no images or no category with keypoints)")
    return coco


def load_results(path, coco_gt: COCO) -> list[dict]:
    """A COCO keypoint results file, checked against `coco_gt` before any evaluation.

    Raises:
        DiagnoseError: not a JSON list, an entry without 51 finite keypoint numbers or a finite score,
            or an image id the ground truth does not have.
    """
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DiagnoseError(f"{path}: not a readable JSON results file ({type(e).__name__}: {e})") from None
    if not isinstance(results, list):
        raise DiagnoseError(f"{path}: COCO results must be a JSON list, not {type(results).__name__}")
    cat_id = coco_gt.getCatIds()[0]
    for i, r in enumerate(results):
        kpts = r.get("keypoints") if isinstance(r, dict) else None
        if not (isinstance(kpts, list) and len(kpts) == 3 * NUM_KEYPOINTS and _finite(kpts + [r.get("score")])):
            raise DiagnoseError(f"{path}: result {i}: 'keypoints' must be {3 * NUM_KEYPOINTS} finite numbers "
                                f"and 'score' a finite number")
        if r.get("image_id") not in coco_gt.imgs:
            raise DiagnoseError(f"{path}: result {i}: image_id {r.get('image_id')!r} is not in the ground truth")
        r.setdefault("category_id", cat_id)
    return results


def _finite(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def _evaluated(coco_gt: COCO, results: list[dict], oks_thrs=None, all_sizes_only=False) -> COCOeval:
    """COCOeval (keypoints, COCO defaults unless `oks_thrs`; only the "all" size range if `all_sizes_only`:
    a third of the work) after evaluate(); result i gets id i + 1."""
    if results:
        coco_dt = _quiet(coco_gt.loadRes, [dict(r) for r in results])
    else:   # loadRes cannot take an empty list
        coco_dt = COCO()
        coco_dt.dataset = {"images": coco_gt.dataset["images"], "categories": coco_gt.dataset["categories"],
                           "annotations": []}
        _quiet(coco_dt.createIndex)
    coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
    if oks_thrs is not None:
        coco_eval.params.iouThrs = np.array(oks_thrs)
    if all_sizes_only:
        coco_eval.params.areaRng, coco_eval.params.areaRngLbl = coco_eval.params.areaRng[:1], ["all"]
    _quiet(coco_eval.evaluate)
    return coco_eval


def ap_stats(coco_gt: COCO, results: list[dict]) -> dict:
    """AP per person size ({"all", "medium", "large"}; None where there is no GT person of that size)."""
    coco_eval = _evaluated(coco_gt, results)
    _quiet(coco_eval.accumulate)
    _quiet(coco_eval.summarize)
    return {size: None if coco_eval.stats[i] < 0 else float(coco_eval.stats[i]) for size, i in SIZES.items()}


def ap_all(coco_gt: COCO, results: list[dict], ignore_gt_ids=frozenset()) -> float | None:
    """AP over all sizes (= COCOeval.stats[0]) with the GT people in `ignore_gt_ids` ignored."""
    coco_eval = _evaluated(coco_gt, results, all_sizes_only=True)
    for e in filter(None, coco_eval.evalImgs):
        for g, gt_id in enumerate(e["gtIds"]):
            if gt_id in ignore_gt_ids:
                e["gtIgnore"][g] = 1
    _quiet(coco_eval.accumulate)
    precision = coco_eval.eval["precision"][:, :, 0, 0, -1]    # (OKS thresholds, recalls): one class, size, maxDets
    return float(precision[precision > -1].mean()) if (precision > -1).any() else None


def match(coco_gt: COCO, results: list[dict]) -> tuple[list, list, list]:
    """pycocotools' greedy matching at OKS LOC_OKS (all sizes, top 20 per image).

    Returns:
        (pairs [(result index, GT id)], background FP result indices, false-negative GT ids). A detection
        matched to a crowd or keypoint-less GT person is in neither list (pycocotools ignores it).
    """
    coco_eval = _evaluated(coco_gt, results, [LOC_OKS], all_sizes_only=True)
    pairs, background, missed = [], [], []
    for e in filter(None, coco_eval.evalImgs):
        for d, dt_id in enumerate(e["dtIds"]):
            gt_id = int(e["dtMatches"][0][d])
            if not gt_id:
                background.append(dt_id - 1)
            elif not e["dtIgnore"][0][d]:
                pairs.append((dt_id - 1, gt_id))
        missed += [gt_id for g, gt_id in enumerate(e["gtIds"]) if not e["gtIgnore"][g] and not e["gtMatches"][0][g]]
    return sorted(pairs), sorted(background), sorted(missed)


def _people(coco_gt: COCO, gt_id: int):
    """Keypoints (P, K, 2), visibility (P, K) and areas (P,) of the image's GT people, the matched one first,
    followed by the same people left/right flipped (rows P..2P-1), as in cocoanalyze._find_kpt_errors."""
    gt = coco_gt.anns[gt_id]
    anns = [gt] + [a for a in coco_gt.imgToAnns[gt["image_id"]] if a["id"] != gt_id and "keypoints" in a]
    kpts = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), NUM_KEYPOINTS, 3)
    flip = list(FLIP_INDICES)
    kpts = np.concatenate([kpts, kpts[:, flip]])
    areas = np.array([a["area"] for a in anns] * 2, dtype=np.float64)
    return kpts[..., :2], kpts[..., 2], areas


def keypoint_similarity(xy, gt_xy, area) -> np.ndarray:
    """COCO ks per keypoint: exp(-d^2 / (2 sigma)^2 / (area + eps) / 2) (pycocotools computeOks)."""
    d2 = ((np.asarray(xy) - np.asarray(gt_xy)) ** 2).sum(-1)
    return np.exp(-d2 / (2 * OKS_SIGMAS) ** 2 / (np.asarray(area)[..., None] + np.spacing(1)) / 2)


def classify(coco_gt: COCO, result: dict, gt_id: int) -> tuple[list, np.ndarray, np.ndarray]:
    """The error type of each keypoint of a matched detection (module docstring).

    Returns:
        (labels: "good" | an entry of KEYPOINT_ERRORS | "" where the GT keypoint is not labelled,
         own ks (K,) against the matched person (nan where not labelled),
         best ks (K,) over every person and flip: the target of an inversion or swap correction).
    """
    dt_xy = np.array(result["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)[:, :2]
    gt_xy, vis, areas = _people(coco_gt, gt_id)
    ks = np.where(vis > 0, keypoint_similarity(dt_xy[None], gt_xy, areas), -1.0)
    best, where = ks.max(0).clip(0.0), ks.argmax(0)
    n = len(areas) // 2
    labels = []
    for k in range(NUM_KEYPOINTS):
        if vis[0, k] <= 0:
            labels.append("")
        elif best[k] < MISS_KS:
            labels.append("miss")
        elif where[k] == 0:
            labels.append("good" if best[k] >= GOOD_KS else "jitter")
        else:
            labels.append("inversion" if where[k] == n else "swap")
    return labels, np.where(vis[0] > 0, ks[0], np.nan), best


def corrected(result: dict, gt: dict, labels: list, best: np.ndarray, error: str) -> dict:
    """`result` with its `error` keypoints moved to the matched GT keypoint, shifted along x to the target
    ks (jitter 0.85, miss 0.5, inversion/swap the ks it had on the wrong keypoint)."""
    kpts = np.array(result["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    gt_kpts = np.array(gt["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    target = {"jitter": GOOD_KS, "miss": MISS_KS}
    for k, label in enumerate(labels):
        if label == error:
            ks = min(max(target.get(error, best[k]), np.spacing(1)), 1.0)
            dx = math.sqrt(-math.log(ks) * 2 * gt["area"] * (2 * OKS_SIGMAS[k]) ** 2)
            kpts[k, :2] = gt_kpts[k, 0] + dx, gt_kpts[k, 1]
    return {**result, "keypoints": kpts.ravel().tolist()}


def analyse(coco_gt: COCO, results: list[dict]) -> dict:
    """One result file: AP per size, error counts, AP recovered per error type, ks per keypoint and OKS per
    GT person (0 for a false negative)."""
    pairs, background, missed = match(coco_gt, results)
    base = ap_stats(coco_gt, results)
    counts = dict.fromkeys(KEYPOINT_ERRORS + ("good",), 0)
    ks_sum, ks_n = np.zeros(NUM_KEYPOINTS), np.zeros(NUM_KEYPOINTS)
    fixed = {error: list(results) for error in KEYPOINT_ERRORS}
    instance_oks = dict.fromkeys(missed, 0.0)
    for i, gt_id in pairs:
        labels, own, best = classify(coco_gt, results[i], gt_id)
        for label in filter(None, labels):
            counts[label] += 1
        labelled = ~np.isnan(own)
        ks_sum[labelled] += own[labelled]
        ks_n += labelled
        instance_oks[gt_id] = float(own[labelled].mean())
        for error in KEYPOINT_ERRORS:
            if error in labels:
                fixed[error][i] = corrected(results[i], coco_gt.anns[gt_id], labels, best, error)
    recovered = {e: _minus(ap_all(coco_gt, fixed[e]), base["all"]) for e in KEYPOINT_ERRORS}
    drop = set(background)
    without_fp = [r for i, r in enumerate(results) if i not in drop]
    ap_without_fp = ap_all(coco_gt, without_fp)
    recovered["background_fp"] = _minus(ap_without_fp, base["all"])
    recovered["false_negative"] = _minus(ap_all(coco_gt, without_fp, frozenset(missed)), ap_without_fp)
    return {"ap": base, "matched": len(pairs),
            "errors": {**counts, "background_fp": len(background), "false_negative": len(missed)},
            "ap_recovered": recovered,
            "keypoint_ks": {name: float(t / n) if n else None   # None: labelled in no matched pair
                            for name, t, n in zip(KEYPOINT_NAMES, ks_sum, ks_n)},
            "instance_oks": instance_oks}


def diagnose(gt_path, a_path, b_path) -> dict:
    """Both files analysed on the same ground truth, their differences (B - A) and the TOP_LOSSES GT people
    whose OKS fell most from A to B. Every input is read and checked before any evaluation."""
    coco_gt = load_ground_truth(gt_path)
    results = {"a": load_results(a_path, coco_gt), "b": load_results(b_path, coco_gt)}
    a, b = (analyse(coco_gt, results[k]) for k in ("a", "b"))
    people = sorted(set(a["instance_oks"]) | set(b["instance_oks"]))
    losses = [{"image_id": coco_gt.anns[g]["image_id"], "gt_id": g, "oks_a": a["instance_oks"].get(g, 0.0),
               "oks_b": b["instance_oks"].get(g, 0.0)} for g in people]
    for row in losses:
        row["loss"] = row["oks_a"] - row["oks_b"]
    losses = [r for r in sorted(losses, key=lambda r: (-r["loss"], r["gt_id"])) if r["loss"] > 0][:TOP_LOSSES]
    diff = {section: {k: _minus(b[section][k], a[section][k]) for k in a[section]}
            for section in ("ap", "errors", "ap_recovered", "keypoint_ks")}
    for side in (a, b):
        del side["instance_oks"]   # per person: only the largest losses are reported
    return _rounded({"gt": str(gt_path), "a": str(a_path), "b": str(b_path), "a_report": a, "b_report": b,
                     "difference": diff, "largest_losses": losses})


def _minus(x, y):
    """x - y, or None where either is None (an AP over no GT person)."""
    return None if x is None or y is None else x - y


def _rounded(value):
    if isinstance(value, float):
        return round(value, DP)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _table(header, rows) -> str:
    return render(header, rows, markdown=True, none="n/a")   # None: an AP over no GT person


def markdown(report: dict, title: str = "Diagnosis", plot: str = "keypoint_oks.png") -> str:
    """The report as a markdown section: AP by size, error breakdown, per-keypoint ks, largest losses."""
    a, b, diff = report["a_report"], report["b_report"], report["difference"]
    out = [f"## {title}\n", f"A (reference): `{report['a']}`; B: `{report['b']}`; ground truth: `{report['gt']}`. "
           f"Matched at OKS {LOC_OKS}: A {a['matched']}, B {b['matched']} detections. Definitions and "
           "thresholds (Ronchi & Perona, ICCV 2017; coco-analyze): `repro/report/diagnose.py`.\n",
           "### AP by person size\n",
           _table(("size", "A", "B", "B - A"), [(s, a["ap"][s], b["ap"][s], diff["ap"][s]) for s in SIZES]),
           "### Error breakdown (keypoints of matched detections; people for FP/FN) and AP recovered by "
           "fixing each\n",
           _table(("error", "A count", "B count", "B - A", "A AP recovered", "B AP recovered", "B - A"),
                  [(e, a["errors"][e], b["errors"][e], diff["errors"][e], a["ap_recovered"][e],
                    b["ap_recovered"][e], diff["ap_recovered"][e]) for e in ERRORS]),
           f"### Mean keypoint similarity per keypoint (matched pairs; plot `{plot}`)\n",
           _table(("keypoint", "A", "B", "B - A"),
                  [(k, a["keypoint_ks"][k], b["keypoint_ks"][k], diff["keypoint_ks"][k]) for k in KEYPOINT_NAMES]),
           f"### The {TOP_LOSSES} largest per-person OKS losses, A - B (0 where unmatched)\n"]
    losses = report["largest_losses"]
    out.append(_table(("image_id", "gt_id", "OKS A", "OKS B", "loss"),
                      [(r["image_id"], r["gt_id"], r["oks_a"], r["oks_b"], r["loss"]) for r in losses])
               if losses else "No person has a lower OKS in B than in A.\n")
    return "\n".join(out)


def plot_keypoints(report: dict, path: Path):
    """Bar plot of the mean ks per keypoint, A beside B (PNG, Agg)."""
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    xs = np.arange(NUM_KEYPOINTS)
    for offset, side, label in ((-0.2, "a_report", "A"), (0.2, "b_report", "B")):
        values = [report[side]["keypoint_ks"][k] for k in KEYPOINT_NAMES]
        ax.bar(xs + offset, [np.nan if v is None else v for v in values], width=0.4, label=label)
    ax.set_xticks(xs, KEYPOINT_NAMES, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="mean keypoint similarity", ylim=(0, 1), title="Keypoint similarity of matched detections")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def write_report(report: dict, out_dir, title: str = "Diagnosis") -> str:
    """diagnosis.json, diagnosis.md and keypoint_oks.png under `out_dir`; returns the markdown."""
    out_dir = Path(out_dir)
    text = markdown(report, title, plot=str(out_dir / "keypoint_oks.png"))
    plot_keypoints(report, out_dir / "keypoint_oks.png")
    atomic.write_json(out_dir / "diagnosis.json", report)
    atomic.write_text(out_dir / "diagnosis.md", text)
    return text


def pipeline_pairs(profile: str, names, eval_dir) -> list[tuple[str, Path, Path]]:
    """(name, A, B) prediction files the compare stage diagnoses: smoke, the first config against each
    other one; full, each published checkpoint (A) against its retrain (B), where both exist."""
    predictions = lambda name, source: records.predictions_path(name, source, eval_dir)  # noqa: E731
    if profile == "smoke":
        pairs = [(f"{names[0]}_vs_{n}", predictions(names[0], "trained"), predictions(n, "trained"))
                 for n in names[1:]]
    else:
        pairs = [(n, predictions(n, "published"), predictions(n, "trained")) for n in names]
    return [(n, a, b) for n, a, b in pairs if a.is_file() and b.is_file()]


def pipeline_section(profile: str, names, eval_dir, gt_path, out_dir) -> str:
    """The "Diagnosis" section of comparison.md: every pipeline pair diagnosed (all read and checked before
    anything is written), each written under out_dir/<pair>; out_dir/pairs.json lists the pairs."""
    pairs = pipeline_pairs(profile, names, eval_dir)
    reports = [(name, diagnose(gt_path, a, b)) for name, a, b in pairs]
    atomic.write_json(Path(out_dir) / "pairs.json", [{"name": n, "a": str(a), "b": str(b)} for n, a, b in pairs])
    if not reports:
        return f"## Diagnosis\n\nNot run: no pair of prediction files under `{eval_dir}` (profile {profile}).\n"
    return "\n".join(write_report(report, Path(out_dir) / name, f"Diagnosis: {name}") for name, report in reports)
