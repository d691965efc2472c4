"""The handle a step writes its MLflow run through: Tracker (one run, through MlflowClient, metrics
buffered, a failing store reported once through `on_error`) and NullTracker (ranks other than 0, tracking off).

    tracker.log_metrics({"train/loss": 0.01, "train/lr": 5e-4}, step=17)      # buffered, written in batches
    tracker.log_artifact("models/256x192/metrics.json")
    tracker.log_model(models.model_spec(cfg, "models/256x192/best.pth", "trained"))   # registered cpm-256x192
    tracker.end("FINISHED")
"""
import time
from pathlib import Path

from repro.tracking.store import TrackingError, tracking_uri

_BATCH = 500   # metrics per MLflow log_batch call (the API allows 1000)


def flatten(d: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1}} -> {"train.lr": 1}; lists stay values."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


class NullTracker:
    """What ranks other than 0 (and runs with tracking off) get: every call does nothing."""

    run_id = None

    def log_metrics(self, metrics: dict, step: int) -> None: ...
    def flush(self) -> None: ...
    def log_artifact(self, path, artifact_path: str | None = None) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def log_model(self, spec: dict) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class Tracker(NullTracker):
    """One MLflow run, written through MlflowClient (no global active run). Metrics are buffered.

    Without `on_error`, a failing call raises TrackingError. With it (a training run), the first failure is
    passed to `on_error(exc)` once and every later call does nothing: tracking never stops the work.
    """

    def __init__(self, client, run_id: str, on_error=None):
        self.client, self.run_id, self.on_error = client, run_id, on_error
        self._pending, self.failed, self.monitor = [], False, None

    def _call(self, func, *args, **kwargs) -> None:
        if self.failed:
            return
        try:
            func(*args, **kwargs)
        except Exception as e:   # MLflow/SQLAlchemy/HTTP: whatever the store raises
            if self.on_error is None:
                raise TrackingError(f"MLflow run {self.run_id}: {type(e).__name__}: {e}") from e
            self.failed, self._pending = True, []
            self.on_error(e)

    def log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric
        if self.failed:
            return
        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        while self._pending and not self.failed:
            batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
            self._call(self.client.log_batch, self.run_id, metrics=batch, synchronous=True)

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        if Path(path).is_file():
            self._call(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call(self.client.log_text, self.run_id, text, artifact_file)

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag
        self._call(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()],
                   synchronous=True)

    def log_model(self, spec: dict) -> None:
        """spec's checkpoint (models.model_spec) as an MLflow model of this run, registered (tracking/models.py)."""
        from repro.tracking import models
        self._call(models.log_checkpoint, self.client, self.run_id, spec, tracking_uri())

    def end(self, status: str = "FINISHED") -> None:
        if self.monitor is not None:
            self._call(self.monitor.finish)
            self.monitor = None
        self.flush()
        self._call(self.client.set_terminated, self.run_id, status)
