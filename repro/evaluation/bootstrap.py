"""COCO keypoint stats of image resamples, and the bootstrap interval over images (tier A-subset).

pycocotools matches every image on its own (COCOeval.evaluateImg) and only `accumulate` pools the images.
So the per-image matches are computed once, with pycocotools, and a resample of images (with duplicates)
is scored by pooling their rows again: `stats(table, idx)` is pycocotools' accumulate + summarize for the
image list `idx`, bit for bit (tests/unit/evaluation/test_bootstrap.py checks it against COCOeval run on the resampled
images renamed apart), in about a millisecond instead of a full COCOeval.

    table = image_table(coco_gt, results)          # one COCOeval.evaluate
    full = stats(table)                            # == coco_keypoint_eval(coco_gt, results) stats
    draws = bootstrap(table, resamples=1000, seed=0)   # (1000, 10): images drawn with replacement
    lo, hi = percentile_interval(draws, level=0.95)

The interval is the percentile bootstrap (Efron): the (1-level)/2 and (1+level)/2 quantiles of the
resampled stats. The unit resampled is the image, never the box: boxes of one image share its crowding,
scale and detector quality, so resampling boxes treats correlated rows as independent and gives an
interval far too narrow (the coverage test shows it).
"""
import contextlib
import io
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
# (area label, IoU threshold or None = all, precision or recall): pycocotools' _summarizeKps order.
_SUMMARY = (("all", None, "p"), ("all", .5, "p"), ("all", .75, "p"), ("medium", None, "p"), ("large", None, "p"),
            ("all", None, "r"), ("all", .5, "r"), ("all", .75, "r"), ("medium", None, "r"), ("large", None, "r"))


@dataclass(frozen=True)
class AreaRows:
    """Every image's matched detections for one area range, images one after another (image order)."""

    scores: np.ndarray   # (rows,) detection scores, each image's sorted as evaluateImg left them
    tps: np.ndarray      # (T, rows) bool: matched and not ignored, per OKS threshold
    fps: np.ndarray      # (T, rows) bool: unmatched and not ignored
    start: np.ndarray    # (images,) first row of each image
    count: np.ndarray    # (images,) rows of each image (0 for an image pycocotools skips)
    npig: np.ndarray     # (images,) ground truth instances not ignored


@dataclass(frozen=True)
class ImageTable:
    """Per-image COCO keypoint matches of one set of results (see `image_table`)."""

    image_ids: np.ndarray           # (images,) in pycocotools' order (sorted ids)
    areas: dict                     # area label -> AreaRows
    iou_thrs: np.ndarray            # (T,)
    rec_thrs: np.ndarray            # (R,)


def image_table(coco_gt, results: list[dict]) -> ImageTable:
    """Run pycocotools' per-image matching once over every image of `coco_gt` (keypoints, maxDets 20)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(r) for r in results])
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.evaluate()
    p = ev.params
    if len(p.catIds) != 1 or len(p.maxDets) != 1:
        raise ValueError(f"image_table: expected one category and one maxDets (keypoints), got {p.catIds}, {p.maxDets}")
    n, max_det, t = len(p.imgIds), p.maxDets[0], len(p.iouThrs)
    areas = {}
    for a, label in enumerate(p.areaRngLbl):
        scores, tps, fps, count, npig = [], [], [], np.zeros(n, np.int64), np.zeros(n, np.int64)
        for i, e in enumerate(ev.evalImgs[a * n:(a + 1) * n]):
            if e is None:
                continue
            dtm, dt_ig = e["dtMatches"][:, :max_det] != 0, e["dtIgnore"][:, :max_det].astype(bool)
            scores.append(np.asarray(e["dtScores"][:max_det], float))
            tps.append(dtm & ~dt_ig)
            fps.append(~dtm & ~dt_ig)
            count[i], npig[i] = len(scores[-1]), np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
        start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        cat = (lambda parts, empty: np.concatenate(parts, axis=-1) if parts else empty)  # noqa: E731
        areas[label] = AreaRows(cat(scores, np.zeros(0)), cat(tps, np.zeros((t, 0), bool)),
                                cat(fps, np.zeros((t, 0), bool)), start, count, npig)
    return ImageTable(np.asarray(p.imgIds, np.int64), areas, np.asarray(p.iouThrs), np.asarray(p.recThrs))


def rows_of(area: AreaRows, idx: np.ndarray) -> np.ndarray:
    """The row numbers of images `idx` (positions, duplicates allowed), image after image."""
    lens = area.count[idx]
    ends = np.cumsum(lens)
    return np.repeat(area.start[idx] - (ends - lens), lens) + np.arange(ends[-1] if len(ends) else 0)


def precision_recall(area: AreaRows, rows: np.ndarray, npig: int, rec_thrs: np.ndarray):
    """pycocotools' accumulate for one area range: precision (T, R) and recall (T,), -1 where undefined."""
    t, nd = area.tps.shape[0], len(rows)
    if npig == 0:
        return -np.ones((t, len(rec_thrs))), -np.ones(t)
    if nd == 0:
        return np.zeros((t, len(rec_thrs))), np.zeros(t)
    ranked = rows[np.argsort(-area.scores[rows], kind="mergesort")]   # mergesort: pycocotools' tie order
    tp_sum = np.cumsum(area.tps[:, ranked], axis=1).astype(float)
    fp_sum = np.cumsum(area.fps[:, ranked], axis=1).astype(float)
    rc = tp_sum / npig
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]   # precision made monotone, as the loop does
    # All thresholds at once (a bootstrap calls this thousands of times): each recall row is sorted, so
    # searchsorted finds pycocotools' first index at or past every recall threshold.
    inds = np.stack([np.searchsorted(row, rec_thrs, side="left") for row in rc])
    precision = np.where(inds < nd, np.take_along_axis(pr, np.minimum(inds, nd - 1), axis=1), 0.0)
    return precision, rc[:, -1].copy()


def stats_of(table: ImageTable, per_area: dict) -> np.ndarray:
    """pycocotools' summarize of {area label: (precision, recall)}: the 10 stats in STAT_NAMES order."""
    out = np.zeros(len(_SUMMARY))
    for j, (label, thr, kind) in enumerate(_SUMMARY):
        s = per_area[label][0 if kind == "p" else 1]
        if thr is not None:
            s = s[np.where(thr == table.iou_thrs)[0]]
        out[j] = np.mean(s[s > -1]) if len(s[s > -1]) else -1
    return out


def stats(table: ImageTable, idx=None) -> np.ndarray:
    """The 10 COCO keypoint stats of the images at positions `idx` (duplicates count twice; None: all)."""
    idx = np.arange(len(table.image_ids)) if idx is None else np.asarray(idx, np.int64)
    per_area = {label: precision_recall(area, rows_of(area, idx), int(area.npig[idx].sum()), table.rec_thrs)
                for label, area in table.areas.items()}
    return stats_of(table, per_area)


def draw_images(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) image positions drawn uniformly with replacement, reproducible from `seed`."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap(table: ImageTable, resamples: int = 1000, seed: int = 0, positions=None) -> np.ndarray:
    """(resamples, 10) stats of image resamples of the images at `positions` of `table` (None: all of
    them), each resample as many images as the set."""
    positions = np.arange(len(table.image_ids)) if positions is None else np.asarray(positions, np.int64)
    return np.stack([stats(table, positions[idx]) for idx in draw_images(len(positions), resamples, seed)])


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval per column: the (1-level)/2 and (1+level)/2 quantiles."""
    return (np.quantile(draws, (1 - level) / 2, axis=0), np.quantile(draws, (1 + level) / 2, axis=0))


def detectable_gap(std: float, tolerance: float, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true gap |subset expectation - published| the widened-interval check flags with
    probability `power`: the check fails once the estimate is tolerance + z_(1+level)/2 * std away, and the
    estimate falls that far with probability `power` when the gap is that plus z_power * std (normal
    approximation of the bootstrap spread)."""
    z = NormalDist().inv_cdf
    return tolerance + (z((1 + level) / 2) + z(power)) * std
