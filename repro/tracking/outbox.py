"""Tracking never costs work: a step writes its results first and `publish`es them after as one MLflow run;
a store failure then (or mid-training, through `Tracker.on_error`) is one error line and a marker in
outputs/unpublished/ that `repro publish` (`publish_pending`) records later.
"""
import json
import logging
from pathlib import Path

from repro.tracking.context import log_datasets
from repro.tracking.lifecycle import LOG_FILES, open_run, summary_metrics
from repro.tracking.pending import PENDING_DIR, keep_pending
from repro.tracking.store import TrackingError, enabled

log = logging.getLogger(__name__)


def publish(run: dict, also=None) -> str | None:
    """Record a finished result as one MLflow run, after its files were written.

    Args:
        run: {"kind", "name", "tags", "params", "metrics", "texts": {artifact file: text},
              "files": [[path, artifact dir or None]], "datasets": dataset_inputs(...),
              "model": models.model_spec(...)} (the last five optional; the model is logged and
              registered when its checkpoint exists).
        also: called with the open Tracker before the run ends (a caller's own metrics and artifacts);
            not kept in the marker: what it logs stays on disk only.

    Returns:
        The run id; None when tracking is off ($REPRO_TRACKING=0) or the store failed: then one error
        line is logged and the run is kept under outputs/unpublished/ for `repro publish`.
    """
    if not enabled():
        return None
    try:
        return _publish(run, also)
    except TrackingError as e:
        keep_pending(run, e)
        return None


def _publish(run: dict, also=None) -> str:
    tracker = open_run(run["name"], run["tags"], run["params"])
    tracker._call(log_datasets, tracker.client, tracker.run_id, run.get("datasets", []))
    tracker.log_metrics(run.get("metrics", {}), step=0)
    for artifact_file, text in run.get("texts", {}).items():
        tracker.log_text(text, artifact_file)
    for path, artifact_path in run.get("files", []):
        tracker.log_artifact(path, artifact_path)
    if run.get("model") and Path(run["model"]["checkpoint"]).is_file():
        tracker.log_model(run["model"])
    if also is not None:
        also(tracker)
    tracker.end("FINISHED")
    return tracker.run_id


def _train_run(marker: dict) -> dict:
    """A training run to publish afterwards: its logs, final metrics and best checkpoint from its out dir."""
    out = Path(marker["out_dir"])
    metrics = {}
    if (out / "metrics.json").is_file():
        summary = json.loads((out / "metrics.json").read_text())
        # No per-epoch val/* history survives a failed store: the last validation is kept as final/*.
        metrics = {**summary_metrics(summary, "best"), **summary_metrics(summary, "final")}
    files = [[str(out / n), "logs"] for n in LOG_FILES]
    return {**marker, "metrics": metrics, "files": files + [[str(out / "best.pth"), "checkpoints"]],
            "tags": {**marker["tags"], "repro.published_late": "true"}}


def publish_pending(pending_dir=PENDING_DIR) -> tuple[list, list]:
    """Publish every run kept in `pending_dir`; a marker is removed once its run is recorded.

    Returns:
        (published run ids, markers still pending with their error).
    """
    done, failed = [], []
    for marker in sorted(Path(pending_dir).glob("*.json")):
        run = json.loads(marker.read_text())
        try:
            done.append(_publish(_train_run(run) if run.get("kind") == "train" else run))
        except TrackingError as e:
            failed.append((marker, str(e).splitlines()[0]))
            continue
        marker.unlink()
    return done, failed
