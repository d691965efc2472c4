"""The evaluate step's MLflow run: the COCO stats and counts as metrics under their own names (AP, AP50, ...,
num_images), the eval, codec and model settings as params, the metrics file as an artifact."""
import json

from repro import tracking
from repro.tracking import models


def log_evaluation(run_name: str, cfg, record: dict, model_checkpoint=None) -> str | None:
    """One evaluation as an MLflow run (child of this pipeline's parent run).

    Args:
        run_name: e.g. "evaluate_256x192" or "evaluate_published_256x192".
        cfg: the resolved run configuration (its eval and codec sections become params).
        record: the metrics file's content (repro.evaluation.results.metrics_record).
        model_checkpoint: if given (a published checkpoint), also logged as an MLflow model and registered
            as cpm-<config>-<record's source> (repro/tracking/models.py).

    Returns:
        The run id; None when tracking is off or failed (then a marker waits for `repro publish`).
    """
    tags = {**tracking.run_context(cfg, world_size=1, recipe_diff=[]), "repro.stage": "evaluate",
            "repro.source": str(record.get("source")), "repro.checkpoint": str(record.get("checkpoint"))}
    for key in ("repro.recipe", "repro.recipe_diff"):   # properties of a training run, not of an evaluation
        del tags[key]
    resolved = cfg.to_dict()
    run = {"kind": "evaluate", "name": run_name, "tags": tags, "datasets": tracking.dataset_inputs(cfg, tags),
           "params": tracking.flatten({**{k: resolved[k] for k in ("eval", "codec", "model")},
                                       **({"subset": record["subset"]} if "subset" in record else {})}),
           "metrics": {k: v for k, v in record.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"},
           "texts": {"metrics.json": json.dumps(record, indent=2) + "\n"}}
    if model_checkpoint is not None:
        run["model"] = models.model_spec(cfg, model_checkpoint, str(record.get("source")))
    return tracking.publish(run)
