"""The evaluate step: evaluate one checkpoint source of a config and write every record of it.

    python -m stages.evaluate --config 256x192 --source trained --checkpoint models/256x192/best.pth   # DVC
    repro evaluate --config 256x192 --checkpoint models/256x192/best.pth [--ledger-dir reports/ledger]  # CLI

Both call `run_evaluate` with their output paths (the stage's come from dvc.yaml's cmd), so both write the
same records: the metrics file (reports/metrics/<tag>.json in the pipeline, read by `compare` and the gates),
predictions.json and metrics.json in the evaluation directory, an MLflow run (a published checkpoint also
becomes the registered model cpm-<config>-published; trained ones are registered by their training run), and,
for a trained model, one retrain more in the seed ledger (tier C / S equivalence).

Sources: "trained" (a checkpoint of ours), "published" (mmpose's checkpoint of the config, downloaded and
sha256-verified; full profile only, elsewhere the metrics file says why it did not run), "reference" (tier E:
the committed smoke reference checkpoint of reports/reference/smoke.json, its record adding the predictions
path and the val data digests; smoke profile only).
"""
import time
from pathlib import Path

from repro import atomic, config, machine, records, tracking
from repro.errors import ReproError
from repro.evaluation import ledger, reference, results


def run_evaluate(cfg, source: str, checkpoint=None, *, metrics_path, eval_dir, published_dir,
                 ledger_dir=None, use_gt_bbox: bool | None = None) -> dict:
    """Evaluate `source` for cfg.name with the published protocol and write its records.

    Args:
        cfg: the run configuration (config.load); `amp: auto` is resolved here.
        source: one of records.SOURCES.
        checkpoint: the checkpoint file of source "trained".
        metrics_path: the metrics record (reports/metrics/<tag>.json in the pipeline).
        eval_dir: where predictions.json and metrics.json go (outputs/eval/<tag>).
        published_dir: where source "published" downloads its checkpoint (models/published).
        ledger_dir: the seed ledger a trained model's record is appended to (reports/ledger); None: none.
        use_gt_bbox: GT boxes instead of the detection file; None takes cfg.eval.use_gt_bbox.

    Returns:
        The record written to metrics_path (a not_run record where the profile has nothing to evaluate).

    Raises:
        TrackingError: the MLflow store cannot take writes (before any work).
        ReproError: the metrics directory is not writable, or bad data, checkpoint or download.
    """
    if source == "trained" and not checkpoint:
        raise ReproError("source 'trained' needs the checkpoint file to evaluate (--checkpoint)")
    metrics_path, eval_dir = Path(metrics_path), Path(eval_dir)
    atomic.check_writable(metrics_path.parent)   # before the download and the evaluation, not after them
    if source == "published" and cfg.data.source != "coco":   # nothing to evaluate, nothing for MLflow
        reason = f"profile {cfg.profile!r} has no published checkpoint to evaluate (tier A needs profile full)"
        record = results.not_run_record(cfg, source, reason)
        records.write(metrics_path, record)
        return record
    cfg = machine.resolve_precision(cfg)
    tracking.preflight()
    # torch, pycocotools, mlflow: imported once there is something to evaluate, so that the smoke profile's
    # evaluate_published stages (which have none) take a second, not the 3 s of these imports.
    from repro import checkpoint as ckpt_io
    from repro.evaluation import evaluate
    from repro.evaluation.tracking_run import log_evaluation
    if source == "reference":
        record, cfg = evaluate_reference(cfg, eval_dir)
        records.write(metrics_path, record)   # first: a tracking failure must not cost the evaluation
        if record.get("status") == "not_run":   # the stage's out (outputs/eval/<tag>) says why, as the metrics do
            records.write(eval_dir / "metrics.json", record)
        else:
            log_evaluation(f"evaluate_{records.tag(cfg.name, source)}", cfg, record)
        return record
    checkpoint = Path(checkpoint) if checkpoint else None
    if source == "published":
        from repro.data.download import fetch_published
        checkpoint = fetch_published(config.published()["models"][cfg.name], Path(published_dir),
                                     mirror=config.mirror())
    start = time.perf_counter()
    metrics = evaluate.evaluate_checkpoint(cfg, checkpoint, eval_dir, use_gt_bbox=use_gt_bbox)
    record = {**results.metrics_record(cfg, metrics, source, checkpoint, ckpt_io.training_facts(checkpoint)),
              "eval_wall_time_s": round(time.perf_counter() - start, 3)}   # beside `repro plan`'s estimate
    records.write(metrics_path, record)   # first: a tracking failure must not cost the evaluation
    # A published checkpoint is also registered as the MLflow model cpm-<config>-published (trained ones are
    # registered by their training run, as cpm-<config>).
    log_evaluation(f"evaluate_{records.tag(cfg.name, source)}", cfg, record,
                   model_checkpoint=checkpoint if source == "published" else None)
    if source == "trained" and ledger_dir is not None:   # one retrain more in the seed ledger
        ledger.append(ledger_dir, record, config.published()["metric_names"])
    return record


def evaluate_reference(cfg, out_dir: Path) -> tuple:
    """Tier E: (the record of cfg.name's committed reference evaluated here, its resolved config); a not_run
    record outside the smoke profile."""
    index = reference.load_index()
    if cfg.profile != reference.PROFILE or index is None or cfg.name not in index["configs"]:
        why = (f"profile {cfg.profile!r} has no smoke reference (tier E is the smoke profile's)"
               if cfg.profile != reference.PROFILE else f"{reference.INDEX} has no reference for {cfg.name}")
        return results.not_run_record(cfg, "reference", why), cfg
    cfg = reference.eval_config(None, cfg.name, cfg.data.root, base=cfg)
    return reference.evaluate_record(cfg, index["configs"][cfg.name], out_dir), cfg
