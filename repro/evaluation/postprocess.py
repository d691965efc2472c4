"""Instance rescoring, OKS-NMS and the COCO keypoint result format (spec §4.3), vectorised.

    preds = repro.evaluation.evaluate.predict(model, loader, device, eval_cfg)      # one row per person box
    results = repro.evaluation.postprocess.postprocess(preds, keypoint_score_thr=0.2, nms_thr=0.9)

`Predictions` holds one row per box as parallel numpy arrays (struct of arrays), so rescoring is one
expression and NMS groups rows by image with a single sort. The 104,125 boxes of the real val2017 run
take well under a second on a CPU (benchmarks/bench_eval.py).
"""
from dataclasses import dataclass, fields

import numpy as np

from repro.keypoints import OKS_SIGMAS

_EPS = np.spacing(1)  # mmpose oks_iou's eps in the area denominator


@dataclass
class Predictions:
    """Per-box outputs of inference, in image coordinates. N rows, K keypoints."""

    image_ids: np.ndarray        # (N,) int64 COCO image id
    keypoints: np.ndarray        # (N, K, 2) float64 x, y in image pixels
    keypoint_scores: np.ndarray  # (N, K) float64 heatmap maxima
    bboxes: np.ndarray           # (N, 4) float64 the input box (det or GT), xywh
    bbox_scores: np.ndarray      # (N,) float64 detector score (1 for GT boxes)
    areas: np.ndarray            # (N,) float64 padded, aspect-fixed box area s_w * s_h (NMS only)

    def __len__(self) -> int:
        return len(self.image_ids)

    @classmethod
    def concat(cls, parts: list["Predictions"]) -> "Predictions":
        """Stack several (per-batch or per-rank) parts; an empty list gives an empty 17-keypoint set."""
        parts = [p for p in parts if len(p)] or [cls.empty()]
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def take(self, rows: np.ndarray) -> "Predictions":
        """The rows `rows` (an index array), in that order."""
        return Predictions(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @classmethod
    def empty(cls, num_keypoints: int = len(OKS_SIGMAS)) -> "Predictions":
        k = num_keypoints
        return cls(np.zeros(0, np.int64), np.zeros((0, k, 2)), np.zeros((0, k)), np.zeros((0, 4)),
                   np.zeros(0), np.zeros(0))


def rescore(keypoint_scores: np.ndarray, bbox_scores: np.ndarray, thr: float = 0.2) -> np.ndarray:
    """Instance score = bbox score x mean of the keypoint scores strictly above `thr` (0 when none).

    Args:
        keypoint_scores: (N, K) keypoint confidences.
        bbox_scores: (N,) box confidences.
        thr: keypoint score threshold (mmpose `keypoint_score_thr`); a score equal to it does not count.

    Returns:
        (N,) float64 instance scores.
    """
    above = keypoint_scores > thr
    count = above.sum(axis=1)
    total = np.where(above, keypoint_scores, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros(len(count)), where=count > 0)
    return np.asarray(bbox_scores, dtype=np.float64) * mean


def pair_oks(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray = OKS_SIGMAS) -> np.ndarray:
    """OKS of every pair i < j within each of B same-size groups, as mmpose's `oks_iou` (vis_thr=None).

    e_k = d_k^2 / (2 sigma_k)^2 / ((area_i + area_j) / 2 + eps) / 2, OKS = mean over all K of exp(-e_k),
    evaluated in that order (so a value at the threshold compares as it does in mmpose).

    Args:
        keypoints: (B, n, K, 2) image coordinates.
        areas: (B, n) instance areas.
        sigmas: (K,) per-keypoint OKS sigmas.

    Returns:
        (B, n (n - 1) / 2) OKS, pairs in np.triu_indices(n, 1) order.
    """
    i, j = np.triu_indices(keypoints.shape[1], 1)
    x, y = keypoints[..., 0], keypoints[..., 1]                                   # (B, n, K)
    e = x[:, i] - x[:, j]                                                         # (B, P, K)
    e *= e
    dy = y[:, i] - y[:, j]
    dy *= dy
    e += dy
    e /= (2 * sigmas) ** 2
    e /= ((areas[:, i] + areas[:, j]) / 2 + _EPS)[..., None]
    e /= -2
    np.exp(e, out=e)
    # The mean over K as a matrix product: a ufunc reduction over a short last axis is several times slower.
    return e @ np.full(len(sigmas), 1 / len(sigmas))


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray = OKS_SIGMAS) -> np.ndarray:
    """(n, n) symmetric OKS matrix of one image's (n, K, 2) keypoints, ones on the diagonal (see pair_oks)."""
    n = len(keypoints)
    i, j = np.triu_indices(n, 1)
    m = np.eye(n)
    m[i, j] = m[j, i] = pair_oks(keypoints[None], areas[None], sigmas)[0]
    return m


def _greedy_keep(over: np.ndarray) -> np.ndarray:
    """Greedy NMS in B groups at once; over[b, i, j] (i < j, rows by descending score): i suppresses j."""
    keep = np.ones(over.shape[:2], dtype=bool)
    # Row r's own fate is settled by rows < r, all handled before it; rows suppressing nothing are skipped.
    for r in np.flatnonzero(over.any(axis=(0, 2))):
        keep &= ~(over[:, r] & keep[:, r, None])
    return keep


_CHUNK = 1 << 21   # elements of one (B, P, K) OKS intermediate: 16 MiB in float64


def image_groups(image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by image as mmpose's CocoMetric groups them.

    Images come in order of first appearance (CocoMetric's dict of image ids), rows within an image in
    input order (CocoMetric sorts them by dataset instance id, which is the row order of `predict`).

    Args:
        image_ids: (N,) image of each row.

    Returns:
        rows (N,) row indices, image after image; starts (G,) where each image begins in `rows`.
    """
    image_ids = np.asarray(image_ids)
    if not len(image_ids):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    rows = np.argsort(first[inverse], kind="stable")   # the key is each row's image's first row
    grouped = image_ids[rows]
    return rows, np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])


def oks_nms(image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray,
            thr: float = 0.9, sigmas: np.ndarray = OKS_SIGMAS) -> np.ndarray:
    """OKS-NMS within each image: drop an instance whose OKS with a kept higher-scored one is > `thr`.

    Visiting order is mmpose's `oks_nms` exactly, ties included: per image (rows as `image_groups`
    gives them), `scores.argsort()[::-1]`, numpy's default (quicksort) argsort reversed, so equal scores
    come out in the order that sort leaves them reversed, not in input order. Images holding the same
    number of instances are sorted and suppressed together (a row-wise argsort of a (B, n) array is the
    same sort as each row's own), so the cost is a few numpy calls per distinct image size.

    Args:
        image_ids: (N,) image of each instance.
        keypoints: (N, K, 2) image coordinates.
        scores: (N,) instance scores (after `rescore`).
        areas: (N,) areas used in the OKS denominator.
        thr: suppression threshold (mmpose `nms_thr`); OKS equal to it is kept.
        sigmas: (K,) OKS sigmas.

    Returns:
        Indices of the kept instances as mmpose writes them: images in order of first appearance, the
        kept ones of an image in visiting order.
    """
    scores = np.asarray(scores)
    order, starts = image_groups(image_ids)
    sizes = np.diff(np.r_[starts, len(order)])
    keep = np.ones(len(order), dtype=bool)                 # indexed by position in `order`
    for n in np.unique(sizes):
        group_starts = starts[sizes == n]
        rows = group_starts[:, None] + np.arange(n)       # (B, n) positions in `order`
        visit = np.take_along_axis(rows, np.argsort(scores[order[rows]], axis=1)[:, ::-1], axis=1)
        order[rows] = order[visit]                         # each image's rows now in visiting order
        if n == 1:
            continue
        per_group = n * (n - 1) // 2 * len(sigmas)
        n_chunks = min(len(group_starts), -(-len(group_starts) * per_group // _CHUNK))
        i, j = np.triu_indices(n, 1)
        for chunk in np.array_split(np.arange(len(group_starts)), n_chunks):
            idx = order[rows[chunk]]
            over = np.zeros((len(chunk), n, n), dtype=bool)
            over[:, i, j] = pair_oks(keypoints[idx], areas[idx], sigmas) > thr
            keep[rows[chunk]] = _greedy_keep(over)
    return order[keep]


def to_coco_results(preds: Predictions, scores: np.ndarray, index: np.ndarray) -> list[dict]:
    """Rows `index` of `preds` in the COCO keypoint results format.

    Each result is {image_id, category_id: 1, keypoints: [x, y, score] * K, score, bbox}. `bbox` (the input
    det/GT box, xywh) follows mmpose 1.x: it makes pycocotools' loadRes take its bbox branch, so a result's
    area is the box area rather than the keypoint extent, which only decides which unmatched results the
    AP(M)/AP(L) area ranges ignore (spec §4.3).
    """
    kps = np.concatenate([preds.keypoints[index], preds.keypoint_scores[index][..., None]], axis=-1)
    rows = zip(preds.image_ids[index].tolist(), kps.reshape(len(index), kps.shape[1] * 3).tolist(),
               np.asarray(scores)[index].tolist(), preds.bboxes[index].tolist())
    return [{"image_id": i, "category_id": 1, "keypoints": k, "score": s, "bbox": b} for i, k, s, b in rows]


def check_finite(preds: Predictions, source: str = "predictions"):
    """Raise ValueError naming the first bad row when a score or coordinate is NaN or infinite.

    The published protocol keeps every box with score >= 0; a NaN score has no defined place in it.
    """
    for name in ("bbox_scores", "keypoint_scores", "keypoints", "areas"):
        values = getattr(preds, name)
        bad = np.flatnonzero(~np.isfinite(values).all(axis=tuple(range(1, values.ndim))))
        if len(bad):
            raise ValueError(f"{source}: {len(bad)} row(s) have non-finite {name} "
                             f"(first: row {bad[0]}, image_id {int(preds.image_ids[bad[0]])})")


def postprocess(preds: Predictions, keypoint_score_thr: float = 0.2, nms_thr: float = 0.9) -> list[dict]:
    """Rescore, OKS-NMS per image and format as COCO keypoint results (spec §4.3).

    Args:
        preds: every box's prediction.
        keypoint_score_thr: see `rescore`.
        nms_thr: see `oks_nms`.

    Returns:
        The kept instances as COCO result dicts (see `to_coco_results`).
    """
    check_finite(preds)
    scores = rescore(preds.keypoint_scores, preds.bbox_scores, keypoint_score_thr)
    keep = oks_nms(preds.image_ids, preds.keypoints, scores, preds.areas, nms_thr)
    return to_coco_results(preds, scores, keep)
