"""MLflow records of training runs. With repro.registry, the only modules that import mlflow (lazily: `import
repro.engine.train` stays fast).

    tracker = tracking.start(cfg, out_dir, world_size=2, recipe_diff=[...])   # rank 0; others get NullTracker()
    tracker.log_metrics({"train/loss": 0.01, "train/lr": 5e-4}, step=17)      # buffered, written in batches
    tracker.log_artifact("models/256x192/metrics.json")
    tracker.log_model(registry.model_spec(cfg, "models/256x192/best.pth", "trained"))   # registered cpm-256x192
    tracker.end("FINISHED")

Store: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db (run `mlflow ui --backend-store-uri
sqlite:///mlflow.db` in the repo root). Experiment: $MLFLOW_EXPERIMENT_NAME, else "cpm-repro". A store that
cannot be reached fails in `check_store` within a few seconds, before any data is read.

Each run carries the resolved configuration as params (dotted keys) and the context needed to rerun it:
git commit (+ the uncommitted diff as an artifact), pip freeze, torch/CUDA/cuDNN versions, CPU and GPU
names, world size, seed, sha256 of the annotation and detection files, the recipe status (open/closed
with the differing items) and `repro.pipeline`, shared by every stage run of one `dvc repro`.

Runs of one `dvc repro` are children (mlflow.parentRunId) of one `pipeline-<id>` run that compare closes.
A finished training run logs its best.pth as an MLflow PyTorch model registered as `cpm-<config>`; the
evaluation of a published checkpoint registers it as `cpm-<config>-published` (repro/registry.py).
Every run records its owner (host, pid, pid start time); the next run marks a RUNNING run whose owner is
gone as KILLED. The experiment is tagged as model training and carries the saved view "CPM comparison".
Tracking never costs work: stages write their results first and `publish` them after; a store failure
then (or mid-training, through `Tracker.on_error`) is one error line and a marker in outputs/unpublished/
that `repro publish` records later. REPRO_TRACKING=0 records nothing.
"""
import importlib.metadata
import json
import logging
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import torch

from repro import atomic, config, machine
from repro.digest import sha256_file
from repro.errors import ReproError

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "cpm-repro"
# Where a run that could not be recorded waits for `repro publish` (relative to the repo root).
PENDING_DIR = Path("outputs/unpublished")
# MLflow 3.17's UI opens an experiment tagged as a model-training one on its runs table (not GenAI "Overview").
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# A saved view of the runs table (MLflow 3.17 keeps saved views as experiment tags of this prefix; the UI
# opens one at #/experiments/<id>/runs?viewStateShareKey=<key>).
VIEW_KEY = "cpm-comparison"
VIEW_COLUMNS = ["tags.`repro.config`", "tags.`repro.profile`", "tags.`repro.source`", "metrics.`AP`",
                "metrics.`AP50`", "metrics.`AP75`", "metrics.`AR`", "tags.`repro.verdict`"]
CHECK_TIMEOUT_S = 5.0
_BATCH = 500   # metrics per MLflow log_batch call (the API allows 1000)
SYSTEM_METRICS_INTERVAL_S = 10   # MLflow's default sampling period for system/* metrics (CPU, memory, GPU)


class TrackingError(ReproError, RuntimeError):
    """The MLflow store cannot be used; raised before training starts. One line like bad input, but exit
    code 1: the input is fine, the store is not."""

    exit_code = 1


def enabled() -> bool:
    """Whether runs are recorded: $REPRO_TRACKING unset or anything but "0"."""
    return config.tracking_enabled()


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else an SQLite file in the current directory (the repo root under DVC)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def _sqlite_path(uri: str) -> Path | None:
    rest = uri[len("sqlite://"):]
    if rest in ("", "/", "/:memory:"):
        return None
    return Path(rest[1:] if rest.startswith("/") else rest)   # sqlite:///rel or sqlite:////abs


def preflight() -> None:
    """Before a stage's work: the store must take writes (when tracking is on).

    Raises:
        TrackingError: it cannot, with the URI and the reason.
    """
    if enabled():
        check_store(tracking_uri())


def check_store(uri: str, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Fail fast, with the URI in the message, when the tracking store cannot be reached.

    http(s): the server must answer within `timeout` (any HTTP status counts as reachable). sqlite: the
    database's directory must exist and the file must open. file: the directory must be creatable.
    Other schemes are left to MLflow.
    """
    scheme = urllib.parse.urlparse(uri).scheme
    hint = "set MLFLOW_TRACKING_URI to a reachable store (or unset it for ./mlflow.db)"
    if scheme in ("http", "https"):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass   # the server answered
        except (urllib.error.URLError, socket.timeout, OSError) as e:
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({e}); {hint}") from None
    elif scheme == "sqlite":
        path = _sqlite_path(uri)
        if path is None:
            return
        if not path.parent.is_dir():
            raise TrackingError(f"MLflow store {uri}: directory {path.parent} does not exist; {hint}")
        _probe_sqlite(uri, path, timeout, hint)
    elif scheme in ("", "file"):
        path = Path(urllib.parse.urlparse(uri).path if scheme else uri)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"MLflow store {uri}: cannot create {path} ({e}); {hint}") from None


def _probe_sqlite(uri: str, path: Path, timeout: float, hint: str) -> None:
    """Change `path` (its user_version header field, rolled back: nothing is written), so a read-only or locked
    database is found now, not after the work, in SQLAlchemy's tracebacks. A missing file needs a
    writable directory (MLflow creates it)."""
    if not path.exists():
        if not os.access(path.parent, os.W_OK):
            raise TrackingError(f"MLflow store {uri}: directory {path.parent} is not writable; {hint}")
        return
    try:
        con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            version = con.execute("pragma user_version").fetchone()[0]
            con.execute("begin immediate")   # a lock alone passes on a read-only file: change a page
            con.execute(f"pragma user_version = {int(version) + 1}").fetchall()   # the error comes on fetch
            con.execute("rollback")
        finally:
            con.close()
    except sqlite3.Error as e:
        raise TrackingError(f"MLflow store {uri}: cannot write {path} ({e}); {hint}") from None


# ---------------------------------------------------------------------------------------------- context

_FRESH_GROUP = uuid.uuid4().hex


def _is_dvc(cmdline: list) -> bool:
    """`dvc ...`, `/venv/bin/dvc ...`, `python /venv/bin/dvc ...` or `python -m dvc ...`."""
    for i, arg in enumerate(cmdline[:3]):
        if Path(arg).name in ("dvc", "dvc.exe") or (arg == "-m" and cmdline[i + 1:i + 2] == ["dvc"]):
            return True
    return False


def pipeline_group_id() -> str:
    """One id shared by every stage run of one `dvc repro` (the MLflow tag `repro.pipeline`).

    $REPRO_PIPELINE_ID if set; else derived from the nearest ancestor dvc process (pid + start time, so a
    recycled pid gives another id); else a fresh id for this process.
    """
    if config.pipeline_id():
        return config.pipeline_id()
    import psutil
    try:
        for proc in psutil.Process().parents():
            try:
                if _is_dvc(proc.cmdline()):
                    return f"dvc-{proc.pid}-{int(proc.create_time() * 1000)}"
            except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess):
                continue
    except psutil.Error:
        pass
    return _FRESH_GROUP


def _git(*args: str) -> str | None:
    """git run in the checkout this code comes from (the run's code version, whatever the cwd)."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, check=True,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _pip_freeze() -> str:
    dists = {(d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()}
    return "".join(f"{name}=={version}\n" for name, version in sorted(dists, key=lambda x: x[0].lower()))


def data_digests(cfg) -> dict:
    """sha256 of the annotation and detection files this run reads (those that exist)."""
    files = {"train_ann": cfg.data.train_ann, "val_ann": cfg.data.val_ann, "det_file": cfg.data.det_file}
    return {name: sha256_file(p) for name, p in files.items() if Path(p).is_file()}


def dataset_inputs(cfg, context: dict) -> list:
    """The annotation and detection files a run read, as MLflow dataset inputs (the UI's Dataset column):
    [{"name", "path", "digest" (the first 32 hex digits of the sha256 in `context`), "context"}]."""
    use = {"train_ann": (cfg.data.train_ann, "training"), "val_ann": (cfg.data.val_ann, "evaluation"),
           "det_file": (cfg.data.det_file, "evaluation")}
    return [{"name": name, "path": str(Path(path).resolve()), "digest": context[f"data.sha256.{name}"][:32],
             "context": role} for name, (path, role) in use.items() if f"data.sha256.{name}" in context]


def _log_datasets(client, run_id: str, datasets: list) -> None:
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    inputs = [DatasetInput(MetaDataset(resolve_dataset_source(d["path"]), name=d["name"],
                                       digest=d["digest"])._to_mlflow_entity(),
                           tags=[InputTag("mlflow.data.context", d["context"])]) for d in datasets]
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def run_context(cfg, world_size: int, recipe_diff: list) -> dict:
    """Tags that say what ran, where, on what: {tag: value} (values are strings)."""
    from repro.recipe import recipe_status
    commit = (_git("rev-parse", "HEAD") or "").strip() or "unknown"
    status = _git("status", "--porcelain")
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    tags = {
        "repro.pipeline": pipeline_group_id(),
        "repro.config": cfg.name, "repro.profile": cfg.profile, "repro.seed": cfg.seed,
        "repro.world_size": world_size,
        "repro.recipe": recipe_status(recipe_diff), "repro.recipe_diff": json.dumps(recipe_diff),
        "git.commit": commit, "mlflow.source.git.commit": commit,
        "git.dirty": "unknown" if status is None else str(bool(status.strip())).lower(),
        "python.version": platform.python_version(), "platform": platform.platform(),
        "torch.version": torch.__version__, "torch.cuda": torch.version.cuda or "none",
        "torch.cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none",
        "hardware.cpu": machine.cpu_model(), "hardware.cpu_count": os.cpu_count(),
        "hardware.gpus": ", ".join(gpus) if gpus else "none",
    }
    tags.update({f"data.sha256.{name}": digest for name, digest in data_digests(cfg).items()})
    return {k: str(v) for k, v in tags.items()}


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


# ---------------------------------------------------------------------------------------------- trackers

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
        """spec's checkpoint (registry.model_spec) as an MLflow model of this run, registered (repro.registry)."""
        from repro import registry
        self._call(registry.log_checkpoint, self.client, self.run_id, spec, tracking_uri())

    def end(self, status: str = "FINISHED") -> None:
        if self.monitor is not None:
            self._call(self.monitor.finish)
            self.monitor = None
        self.flush()
        self._call(self.client.set_terminated, self.run_id, status)


def _quiet_mlflow() -> None:
    import mlflow  # noqa: F401  (mlflow sets its loggers up on import; quieten them afterwards)
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Fail in seconds, not minutes of exponential back-off, if the server goes away mid-run.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def saved_view() -> str:
    """The runs-table view (columns config, profile, source, AP, AP50, AP75, AR, verdict) as MLflow 3.17's
    UI stores a saved view: an envelope whose `state` is the JSON of the page's facets and UI state."""
    state = {"orderByKey": "attributes.start_time", "orderByAsc": False, "selectedColumns": VIEW_COLUMNS,
             "runListHidden": False, "viewMaximized": False, "groupBy": None}
    return json.dumps({"name": "CPM comparison", "createdAt": 0, "updatedAt": 0, "state": json.dumps(state)})


def _experiment_id(client, uri: str) -> str:
    """This project's experiment (created on first use), tagged so the UI opens it on the runs table."""
    name = experiment_name()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if uri.startswith("sqlite:") and _sqlite_path(uri) is not None:
            # Artifacts beside the database (not in whatever directory happens to be current).
            location = (_sqlite_path(uri).resolve().parent / "mlartifacts").as_uri()
        exp = client.get_experiment(client.create_experiment(name, artifact_location=location))
    wanted = {**EXPERIMENT_KIND, f"mlflow.sharedViewState.{VIEW_KEY}": saved_view()}
    for key, value in wanted.items():   # also upgrades an experiment made by an older version
        if exp.tags.get(key) != value:
            client.set_experiment_tag(exp.experiment_id, key, value)
    _mark_dead_runs(client, exp.experiment_id)
    return exp.experiment_id


def _parent_run(client, experiment_id: str, group: str | None) -> str | None:
    """The parent run of this `dvc repro` (tag repro.stage=pipeline), created by its first stage; None
    outside a pipeline. Its owner is the dvc process, so it is marked KILLED if dvc dies before compare."""
    if not group or group == _FRESH_GROUP:
        return None
    runs = client.search_runs([experiment_id], f"tags.`repro.pipeline` = '{group}' and "
                              "tags.`repro.stage` = 'pipeline'", max_results=1)
    if runs:
        return runs[0].info.run_id
    tags = {"repro.pipeline": group, "repro.stage": "pipeline", **owner_tags()}
    if group.startswith("dvc-"):   # dvc-<pid>-<start ms> (pipeline_group_id)
        _, pid, start = group.split("-")
        tags.update({"repro.owner.pid": pid, "repro.owner.start": start})
    return client.create_run(experiment_id, run_name=f"pipeline-{group}", tags=tags).info.run_id


def close_pipeline(verdict: str) -> None:
    """Compare's last step: mark this pipeline's parent run FINISHED with the overall verdict."""
    if not enabled():
        return
    group = pipeline_group_id()
    try:
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=tracking_uri())
        parent = _parent_run(client, _experiment_id(client, tracking_uri()), group)
        if parent:
            client.set_tag(parent, "repro.verdict", verdict)
            client.set_terminated(parent, "FINISHED")
    except Exception as e:   # the comparison is written; a parent left open is marked KILLED later
        log.error("MLflow: could not close pipeline run %s (%s: %s)", group, type(e).__name__, e)


def owner_tags() -> dict:
    """Who runs this process (host, pid, pid start time): lets a later run tell a dead run from a live one."""
    import psutil
    me = psutil.Process()
    return {"repro.owner.host": socket.gethostname(), "repro.owner.pid": str(me.pid),
            "repro.owner.start": str(int(me.create_time() * 1000))}


def _owner_alive(tags: dict) -> bool:
    """False only when the run's owner is known to be gone: same host, and no process with that pid and
    start time (a recycled pid has another start time). Runs of other hosts are left alone."""
    import psutil
    if tags.get("repro.owner.host") != socket.gethostname() or "repro.owner.pid" not in tags:
        return True
    try:
        proc = psutil.Process(int(tags["repro.owner.pid"]))
        return int(proc.create_time() * 1000) == int(tags.get("repro.owner.start", -1))
    except (psutil.NoSuchProcess, ValueError):
        return False


def _mark_dead_runs(client, experiment_id: str) -> list:
    """Set every RUNNING run of this host whose owner process is gone to KILLED; returns their ids."""
    from mlflow.entities import ViewType
    runs = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", ViewType.ACTIVE_ONLY,
                              max_results=1000)
    dead = [r.info.run_id for r in runs if not _owner_alive(r.data.tags)]
    for run_id in dead:
        client.set_terminated(run_id, "KILLED")
        log.warning("MLflow run %s: its process is gone; marked KILLED", run_id)
    return dead


def start(cfg, out_dir, world_size: int, recipe_diff: list, resume_run_id: str | None = None) -> Tracker:
    """Open (or reopen, on resume) this run's MLflow run and record its configuration and context.

    Raises:
        TrackingError: the store is unreachable or rejects the run.
    """
    context = run_context(cfg, world_size, recipe_diff)
    uri = tracking_uri()
    check_store(uri)
    _quiet_mlflow()
    try:
        from mlflow.tracking import MlflowClient
        name, params = f"train-{cfg.name}-{cfg.profile}", flatten(cfg.to_dict())
        run_id = _reopen(MlflowClient(tracking_uri=uri), resume_run_id)
        if run_id is None:
            tracker = _open_run(name, context, params)
            _log_datasets(tracker.client, tracker.run_id, dataset_inputs(cfg, context))
        else:
            tracker = Tracker(MlflowClient(tracking_uri=uri), run_id)
            tracker.set_tags({**context, **owner_tags(), "repro.resumed": "true"})
        _log_context_artifacts(tracker, recipe_diff)
    except TrackingError:
        raise
    except Exception as e:   # any MLflow/SQLAlchemy/HTTP failure: say which store, stop before training
        raise TrackingError(f"MLflow store {uri}: {type(e).__name__}: {e}") from e
    start_system_metrics(tracker, uri, resumed=run_id is not None)
    # From here on a store failure is reported and remembered, and training goes on.
    from repro import registry
    marker = {"kind": "train", "name": name, "tags": context, "params": params, "out_dir": str(out_dir),
              "model": registry.model_spec(cfg, Path(out_dir) / "best.pth", "trained")}
    tracker.on_error = lambda e: _pending_after_failure(marker, e)
    return tracker


def start_system_metrics(tracker: Tracker, uri: str, interval: float = SYSTEM_METRICS_INTERVAL_S,
                         resumed: bool = False) -> None:
    """MLflow's system metrics (system/cpu_utilization_percentage, memory, disk, network; GPU where there is
    one) sampled by a background thread into the run until `tracker.end` (psutil; works offline)."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    tracker.monitor = SystemMetricsMonitor(tracker.run_id, sampling_interval=interval, tracking_uri=uri,
                                           resume_logging=resumed)
    tracker.monitor.start()


def _reopen(client, run_id: str | None) -> str | None:
    if not run_id:
        return None
    try:
        client.get_run(run_id)
    except Exception:   # not in this store (another MLFLOW_TRACKING_URI): start a fresh run
        return None
    client.update_run(run_id, status="RUNNING")
    return run_id


def _log_context_artifacts(tracker: Tracker, recipe_diff: list) -> None:
    diff = _git("diff", "HEAD") or ""
    status = _git("status", "--porcelain") or ""
    tracker.log_text(f"# git status --porcelain\n{status}\n# git diff HEAD\n{diff}", "context/git_diff.patch")
    tracker.log_text(_pip_freeze(), "context/pip_freeze.txt")
    tracker.log_text(json.dumps(recipe_diff, indent=2) + "\n", "context/recipe_diff.json")
    tracker.log_text(" ".join(sys.argv) + "\n", "context/command.txt")


def gather_logs(tracker: NullTracker, out_dir, names=("train_log.jsonl", "val_history.csv", "metrics.json",
                                                       "config.yaml")) -> None:
    """Copy the run's log files (those that exist) into the MLflow run under logs/."""
    for name in names:
        tracker.log_artifact(Path(out_dir) / name, "logs")


def _open_run(run_name: str, tags: dict, params: dict) -> Tracker:
    """A new run in this project's experiment, for a stage that is not training (evaluate, compare)."""
    uri = tracking_uri()
    check_store(uri)
    _quiet_mlflow()
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, uri)
        parent = _parent_run(client, experiment_id, tags.get("repro.pipeline"))
        run = client.create_run(experiment_id, run_name=run_name,
                                tags={**tags, **owner_tags(), **({"mlflow.parentRunId": parent} if parent else {})})
        tracker = Tracker(client, run.info.run_id)
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(tracker.run_id, params=items[i:i + 100], synchronous=True)
    except Exception as e:
        raise TrackingError(f"MLflow store {uri}: {type(e).__name__}: {e}") from e
    log.info("MLflow run %s (%s) in %s (experiment %r)", tracker.run_id, run_name, uri, experiment_name())
    return tracker


def log_evaluation(run_name: str, cfg, record: dict, model_checkpoint=None) -> str | None:
    """One evaluation as an MLflow run: the COCO stats and counts as metrics, the settings as params.

    Args:
        run_name: e.g. "evaluate_256x192" or "evaluate_published_256x192".
        cfg: the resolved run configuration (its eval and codec sections become params).
        record: the metrics file's content (repro.evaluation.results.metrics_record).
        model_checkpoint: if given (a published checkpoint), also logged as an MLflow model and registered
            as cpm-<config>-<record's source> (repro.registry).

    Returns:
        The run id; None when tracking is off or failed (then a marker waits for `repro publish`).
    """
    tags = {**run_context(cfg, world_size=1, recipe_diff=[]), "repro.stage": "evaluate",
            "repro.source": str(record.get("source")), "repro.checkpoint": str(record.get("checkpoint"))}
    for key in ("repro.recipe", "repro.recipe_diff"):   # properties of a training run, not of an evaluation
        del tags[key]
    resolved = cfg.to_dict()
    run = {"kind": "evaluate", "name": run_name, "tags": tags, "datasets": dataset_inputs(cfg, tags),
           "params": flatten({**{k: resolved[k] for k in ("eval", "codec", "model")},
                              **({"subset": record["subset"]} if "subset" in record else {})}),
           "metrics": {k: v for k, v in record.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"},
           "texts": {"metrics.json": json.dumps(record, indent=2) + "\n"}}
    if model_checkpoint is not None:
        from repro import registry
        run["model"] = registry.model_spec(cfg, model_checkpoint, str(record.get("source")))
    return publish(run)


def log_comparison(cfg, summary: dict, report_path, artifacts=(), also=None) -> str | None:
    """The comparison as an MLflow run: overall and per-tier verdicts as tags, measured values and deltas
    as metrics (`<tier>/<config>/<metric>` and `.../delta`), the markdown report as an artifact, each
    (file, artifact directory) of `artifacts` (the diagnosis plots); `also`, if given, is called with the
    run's Tracker before it ends (the caller's own metrics and artifacts)."""
    tags = {"repro.pipeline": pipeline_group_id(), "repro.profile": cfg.profile, "repro.stage": "compare",
            "repro.verdict": summary["verdict"],
            **{f"repro.verdict.{tier}.{name}": entry["verdict"]
               for tier, by_config in summary["tiers"].items() for name, entry in by_config.items()},
            "git.commit": (_git("rev-parse", "HEAD") or "").strip() or "unknown"}
    metrics = {}
    for tier, by_config in summary["results"].items():
        for name, rows in by_config.items():
            for metric, row in rows.items():
                if row["measured"] is not None:
                    metrics[f"{tier}/{name}/{metric}"] = row["measured"]
                if row["delta"] is not None:
                    metrics[f"{tier}/{name}/{metric}/delta"] = row["delta"]
    return publish({"kind": "compare", "name": f"compare-{cfg.profile}", "tags": tags,
                    "params": {"required_tiers": ",".join(summary["required_tiers"])}, "metrics": metrics,
                    "texts": {"comparison.json": json.dumps(summary, indent=2) + "\n"},
                    "files": [[str(report_path), None], *([str(p), d] for p, d in artifacts)]}, also)


# ---------------------------------------------------------------------------------------------- publish

def publish(run: dict, also=None) -> str | None:
    """Record a finished result as one MLflow run, after its files were written.

    Args:
        run: {"kind", "name", "tags", "params", "metrics", "texts": {artifact file: text},
              "files": [[path, artifact dir or None]], "datasets": dataset_inputs(...),
              "model": registry.model_spec(...)} (the last five optional; the model is logged and
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
        _pending_after_failure(run, e)
        return None


def _publish(run: dict, also=None) -> str:
    tracker = _open_run(run["name"], run["tags"], run["params"])
    tracker._call(_log_datasets, tracker.client, tracker.run_id, run.get("datasets", []))
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


def _pending_after_failure(run: dict, error: Exception) -> Path:
    """Keep `run` for `repro publish` and say so in one line (the results themselves are already on disk)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    marker = PENDING_DIR / f"{run['name']}-{stamp}-{os.getpid()}.json"
    atomic.write_json(marker, {**run, "error": f"{type(error).__name__}: {error}"})
    log.error("MLflow failed (%s); the results are written, the run is kept in %s: "
              "run `repro publish` when the store is back", str(error).splitlines()[0][:300], marker)
    return marker


def _train_run(marker: dict) -> dict:
    """A training run to publish afterwards: its logs, final metrics and best checkpoint from its out dir."""
    out = Path(marker["out_dir"])
    metrics = {}
    if (out / "metrics.json").is_file():
        summary = json.loads((out / "metrics.json").read_text())
        metrics = {f"{part}/{k}": v for part in ("best", "final") for k, v in (summary.get(part) or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
    files = [[str(out / n), "logs"] for n in ("train_log.jsonl", "val_history.csv", "metrics.json", "config.yaml")]
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
