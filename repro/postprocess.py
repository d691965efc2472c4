"""Instance rescoring, OKS-NMS and the COCO keypoint result format (spec §4.3), vectorised.

    preds = repro.evaluate.predict(model, loader, device, eval_cfg)      # one row per person box
    results = repro.postprocess.postprocess(preds, keypoint_score_thr=0.2, nms_thr=0.9)

`Predictions` holds one row per box as parallel numpy arrays (struct of arrays), so rescoring is one
expression and NMS groups rows by image with a single sort. The 104,125 boxes of the real val2017 run
take well under a second on a CPU (benchmarks/bench_eval.py).
"""
from dataclasses import dataclass, fields

import numpy as np

from repro.skeleton import OKS_SIGMAS

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


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: np.ndarray = OKS_SIGMAS) -> np.ndarray:
    """Pairwise OKS between the instances of one image, as mmpose's `oks_iou` with `vis_thr=None`.

    e_k = d_k^2 / (2 sigma_k)^2 / ((area_i + area_j) / 2 + eps) / 2, OKS = mean over all K of exp(-e_k).

    Args:
        keypoints: (n, K, 2) image coordinates.
        areas: (n,) instance areas.
        sigmas: (K,) per-keypoint OKS sigmas.

    Returns:
        (n, n) symmetric OKS matrix with ones on the diagonal.
    """
    d2 = ((keypoints[:, None, :, :] - keypoints[None, :, :, :]) ** 2).sum(-1)    # (n, n, K)
    mean_area = (areas[:, None] + areas[None, :]) / 2 + _EPS                      # (n, n)
    e = d2 / (2 * sigmas) ** 2 / mean_area[..., None] / 2
    return np.exp(-e).mean(-1)


def _greedy_keep(overlaps: np.ndarray) -> np.ndarray:
    """Greedy NMS over rows already sorted by score; overlaps[i, j] (i < j) says i suppresses j."""
    over = np.triu(overlaps, k=1)
    keep = np.ones(len(over), dtype=bool)
    for i in np.flatnonzero(over.any(axis=1)):   # rows that suppress nothing cannot change `keep`
        if keep[i]:
            keep &= ~over[i]
    return keep


def oks_nms(image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray,
            thr: float = 0.9, sigmas: np.ndarray = OKS_SIGMAS) -> np.ndarray:
    """OKS-NMS within each image: drop an instance whose OKS with a kept higher-scored one is > `thr`.

    Instances are visited by descending score; ties keep input order (mmpose's reversed argsort may break
    exact ties the other way; only instances with identical scores are affected).

    Args:
        image_ids: (N,) image of each instance.
        keypoints: (N, K, 2) image coordinates.
        scores: (N,) instance scores (after `rescore`).
        areas: (N,) areas used in the OKS denominator.
        thr: suppression threshold (mmpose `nms_thr`); OKS equal to it is kept.
        sigmas: (K,) OKS sigmas.

    Returns:
        Indices of the kept instances, grouped by ascending image id, by descending score within an image.
    """
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores), image_ids))
    bounds = np.flatnonzero(np.diff(image_ids[order])) + 1
    kept = []
    for group in np.split(order, bounds):
        if len(group) == 1:
            kept.append(group)
            continue
        oks = oks_matrix(keypoints[group], areas[group], sigmas)
        kept.append(group[_greedy_keep(oks > thr)])
    return np.concatenate(kept) if kept else np.zeros(0, np.int64)


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
