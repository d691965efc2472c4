"""Golden-predictions diff (tier E): two COCO keypoint result lists, instance by instance.

    d = repro.evaluation.golden.diff(golden_results, new_results, keypoint_px=0.01, score_abs=1e-4)
    print(repro.evaluation.golden.render(d))

Instances are matched by (image_id, bbox rounded to 1e-3): the person box an instance was predicted for
comes from the detection file, so it does not depend on the model. Pure numpy: no torch, no pycocotools.
"""
from collections import defaultdict

import numpy as np

from repro.keypoints import KEYPOINT_NAMES

BBOX_DECIMALS = 3


def instance_key(result: dict) -> tuple:
    """(image_id, bbox rounded to 1e-3): which person box a result was predicted for."""
    return (int(result["image_id"]), tuple(round(float(v), BBOX_DECIMALS) for v in result["bbox"]))


def _pairs(golden: list, new: list):
    """Matched (golden, new) pairs in golden order, and the unmatched results of each side."""
    pool = defaultdict(list)
    for r in new:
        pool[instance_key(r)].append(r)
    pairs, only_golden = [], []
    for g in golden:
        bucket = pool.get(instance_key(g))
        if bucket:
            pairs.append((g, bucket.pop(0)))
        else:
            only_golden.append(g)
    only_new = [r for bucket in pool.values() for r in bucket]
    return pairs, only_golden, only_new


def _describe(g: dict, n: dict, moved: np.ndarray, px: np.ndarray, score_delta: float) -> dict:
    return {"image_id": int(g["image_id"]), "bbox": [round(float(v), BBOX_DECIMALS) for v in g["bbox"]],
            "keypoints": {KEYPOINT_NAMES[k]: round(float(px[k]), 3) for k in np.flatnonzero(moved)},
            "score_delta": float(score_delta)}


def diff(golden: list, new: list, keypoint_px: float, score_abs: float, max_listed: int = 5) -> dict:
    """Compare new COCO keypoint results with the golden ones.

    Args:
        golden: the committed results (list of {image_id, keypoints [x, y, s] * K, score, bbox}).
        new: the results of the code under test.
        keypoint_px: a keypoint "moved" when its image-pixel displacement is above this.
        score_abs: a keypoint or instance score "changed" when it differs by more than this.
        max_listed: how many changed instances to name.

    Returns:
        matched, only_golden, only_new (counts), num_keypoints (over matched instances), changed_keypoints
        (moved or score changed) and changed_fraction, moved_keypoints, max_keypoint_px,
        max_keypoint_score_abs, max_score_abs, changed_instances (a keypoint or the instance score changed)
        and changed_instance_fraction (of matched), and first_changed: the first
        `max_listed` changed instances in golden order ({image_id, bbox, keypoints {name: px}, score_delta}).
    """
    pairs, only_golden, only_new = _pairs(golden, new)
    out = {"matched": len(pairs), "only_golden": len(only_golden), "only_new": len(only_new),
           "num_keypoints": 0, "moved_keypoints": 0, "changed_keypoints": 0, "changed_instances": 0,
           "max_keypoint_px": 0.0, "max_keypoint_score_abs": 0.0, "max_score_abs": 0.0, "first_changed": []}
    for g, n in pairs:
        a = np.asarray(g["keypoints"], np.float64).reshape(-1, 3)
        b = np.asarray(n["keypoints"], np.float64).reshape(-1, 3)
        px = np.hypot(*(b[:, :2] - a[:, :2]).T)
        kp_score = np.abs(b[:, 2] - a[:, 2])
        score_delta = float(n["score"]) - float(g["score"])
        moved = px > keypoint_px
        changed = moved | (kp_score > score_abs)
        out["num_keypoints"] += len(a)
        out["moved_keypoints"] += int(moved.sum())
        out["changed_keypoints"] += int(changed.sum())
        out["max_keypoint_px"] = max(out["max_keypoint_px"], float(px.max(initial=0.0)))
        out["max_keypoint_score_abs"] = max(out["max_keypoint_score_abs"], float(kp_score.max(initial=0.0)))
        out["max_score_abs"] = max(out["max_score_abs"], abs(score_delta))
        if changed.any() or abs(score_delta) > score_abs:
            out["changed_instances"] += 1
            if len(out["first_changed"]) < max_listed:
                out["first_changed"].append(_describe(g, n, moved, px, score_delta))
    out["changed_fraction"] = out["changed_keypoints"] / out["num_keypoints"] if out["num_keypoints"] else 0.0
    out["changed_instance_fraction"] = out["changed_instances"] / len(pairs) if pairs else 0.0
    return out


def describe_first(d: dict) -> str:
    """One line naming the first changed instances: image id, box, keypoints moved (px) and score delta."""
    return "; ".join(_instance_line(inst) for inst in d["first_changed"])


def _instance_line(inst: dict) -> str:
    kps = ", ".join(f"{k} {v:.2f}px" for k, v in inst["keypoints"].items()) or "no keypoint moved"
    return f"image {inst['image_id']} box {inst['bbox']}: {kps}, score {inst['score_delta']:+.2e}"


def render(d: dict) -> str:
    """A short text block: counts, maxima, and the first changed instances."""
    lines = [f"matched {d['matched']}, only in golden {d['only_golden']}, only in new {d['only_new']}",
             f"keypoints changed {d['changed_keypoints']}/{d['num_keypoints']} ({d['changed_fraction']:.4%}), "
             f"moved {d['moved_keypoints']}, max {d['max_keypoint_px']:.4f}px; "
             f"max |keypoint score delta| {d['max_keypoint_score_abs']:.2e}, "
             f"max |instance score delta| {d['max_score_abs']:.2e}; changed instances {d['changed_instances']}"]
    lines += [f"  {_instance_line(inst)}" for inst in d["first_changed"]]
    return "\n".join(lines) + "\n"
