"""The content of a metrics record (repro/records.py names, reads and writes them).

Each file holds the 10 COCO keypoint stats, the counts, and what produced them (profile, source,
checkpoint, evaluation settings), so a reviewer never has to guess which boxes or weights were used.
"""
from repro import machine
from repro.config import RunConfig


def metrics_record(cfg: RunConfig, metrics: dict, source: str, checkpoint, training: dict | None = None) -> dict:
    """One metrics file's content. `source` is "trained", "published" or "reference"; `training` is what the
    checkpoint says of its training (checkpoint.training_facts: `train_precision`, `train_loss`; None each
    for files that do not say, like mmpose's)."""
    training = training or {}
    return {**metrics, "config": cfg.name, "profile": cfg.profile, "source": source,
            "checkpoint": str(checkpoint), "seed": cfg.seed, "platform": machine.fingerprint(),
            "train_precision": training.get("train_precision"), "train_loss": training.get("train_loss"),
            "eval": {"flip_test": cfg.eval.flip_test, "shift_heatmap": cfg.eval.shift_heatmap,
                     "use_gt_bbox": cfg.eval.use_gt_bbox, "keypoint_score_thr": cfg.eval.keypoint_score_thr,
                     "nms_thr": cfg.eval.nms_thr, "amp": cfg.eval.amp}}


def not_run_record(cfg: RunConfig, source: str, reason: str) -> dict:
    """A metrics file for a stage that had nothing to measure, so the gates report it instead of passing."""
    return {"status": "not_run", "reason": reason, "config": cfg.name, "profile": cfg.profile, "source": source}

