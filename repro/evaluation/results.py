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
            "eval": protocol(cfg.eval)}


def protocol(eval_cfg) -> dict:
    """The evaluation settings a record states (the gates compare them with published.yaml eval_settings)."""
    return {"flip_test": eval_cfg.flip_test, "shift_heatmap": eval_cfg.shift_heatmap,
            "use_gt_bbox": eval_cfg.use_gt_bbox, "keypoint_score_thr": eval_cfg.keypoint_score_thr,
            "nms_thr": eval_cfg.nms_thr, "amp": eval_cfg.amp}


def not_run_record(cfg: RunConfig, source: str, reason: str) -> dict:
    """A metrics file for a stage that had nothing to measure, so the gates report it instead of passing."""
    return {"status": "not_run", "reason": reason, "config": cfg.name, "profile": cfg.profile, "source": source}

