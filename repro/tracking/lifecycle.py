"""The life of an MLflow run: this project's experiment (tagged as model training, with the saved view "CPM
comparison"), a run opened with its owner (host, pid, pid start time) under the parent run of its `dvc repro`,
a training run's start (params, context, datasets, system metrics), dead runs marked KILLED, and the parent
run closed by compare with the pipeline's results.

Runs of one `dvc repro` are children (mlflow.parentRunId) of one `pipeline-<id>` run that compare closes.
The next run marks a RUNNING run whose owner is gone as KILLED.
"""
import json
import logging
import socket
import sys
from pathlib import Path

from repro import config
from repro.tracking import pending
from repro.tracking.context import (_FRESH_GROUP, dataset_inputs, git, log_datasets, pip_freeze,
                                    pipeline_group_id, run_context)
from repro.tracking.store import (TrackingError, check_store, enabled, experiment_name, quiet_mlflow,
                                  sqlite_path, tracking_uri)
from repro.tracking.tracker import Tracker, flatten

log = logging.getLogger(__name__)

# MLflow 3.17's UI opens an experiment tagged as a model-training one on its runs table (not GenAI "Overview").
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# A saved view of the runs table (MLflow 3.17 keeps saved views as experiment tags of this prefix; the UI
# opens one at #/experiments/<id>/runs?viewStateShareKey=<key>).
VIEW_KEY = "cpm-comparison"
# The stats the view shows: an evaluation run's own (AP...), and the pipeline (parent) run's per config.
VIEW_STATS = ("AP", "AP50", "AP75", "AR")
VIEW_COLUMNS = ["tags.`repro.config`", "tags.`repro.profile`", "tags.`repro.source`",
                *(f"metrics.`{stat}`" for stat in VIEW_STATS), "tags.`repro.verdict`"]
# A training run's log files, copied into its MLflow run under logs/.
LOG_FILES = ("train_log.jsonl", "val_history.csv", "metrics.json", "config.yaml")
SYSTEM_METRICS_INTERVAL_S = 10   # MLflow's default sampling period for system/* metrics (CPU, memory, GPU)


def view_columns(configs) -> list:
    """The saved view's columns: VIEW_COLUMNS, then `<config>/<stat>` of each config (the parent run's)."""
    return [*VIEW_COLUMNS, *(f"metrics.`{name}/{stat}`" for name in configs for stat in VIEW_STATS)]


def saved_view() -> str:
    """The runs-table view (columns config, profile, source, AP, AP50, AP75, AR, verdict) as MLflow 3.17's
    UI stores a saved view: an envelope whose `state` is the JSON of the page's facets and UI state."""
    state = {"orderByKey": "attributes.start_time", "orderByAsc": False,
             "selectedColumns": view_columns(config.published()["models"]),
             "runListHidden": False, "viewMaximized": False, "groupBy": None}
    return json.dumps({"name": "CPM comparison", "createdAt": 0, "updatedAt": 0, "state": json.dumps(state)})


def _experiment_id(client, uri: str) -> str:
    """This project's experiment (created on first use), tagged so the UI opens it on the runs table."""
    name = experiment_name()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if uri.startswith("sqlite:") and sqlite_path(uri) is not None:
            # Artifacts beside the database (not in whatever directory happens to be current).
            location = (sqlite_path(uri).resolve().parent / "mlartifacts").as_uri()
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


def close_pipeline(verdict: str, metrics: dict | None = None) -> None:
    """Compare's last step: mark this pipeline's parent run FINISHED with the overall verdict (tag
    repro.verdict) and `metrics` (each config's stats under the compare run's names, `<config>/AP`...), so
    the runs table shows the pipeline's results on its parent row without expanding it."""
    if not enabled():
        return
    group = pipeline_group_id()
    try:
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=tracking_uri())
        parent = _parent_run(client, _experiment_id(client, tracking_uri()), group)
        if parent:
            client.set_tag(parent, "repro.verdict", verdict)
            tracker = Tracker(client, parent)
            tracker.log_metrics(metrics or {}, step=0)
            tracker.flush()
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
    quiet_mlflow()
    try:
        from mlflow.tracking import MlflowClient
        name, params = f"train-{cfg.name}-{cfg.profile}", flatten(cfg.to_dict())
        run_id = _reopen(MlflowClient(tracking_uri=uri), resume_run_id)
        if run_id is None:
            tracker = open_run(name, context, params)
            log_datasets(tracker.client, tracker.run_id, dataset_inputs(cfg, context))
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
    from repro.tracking import models   # torch: imported by training, not by every user of repro.tracking
    marker = {"kind": "train", "name": name, "tags": context, "params": params, "out_dir": str(out_dir),
              "model": models.model_spec(cfg, Path(out_dir) / "best.pth", "trained")}
    tracker.on_error = lambda e: pending.keep_pending(marker, e)
    return tracker


def start_system_metrics(tracker: Tracker, uri: str, interval: float = SYSTEM_METRICS_INTERVAL_S,
                         resumed: bool = False) -> None:
    """MLflow's system metrics (system/cpu_utilization_percentage, memory, disk, network; GPU where there is
    one) sampled by a background thread into the run until `tracker.end` (psutil; works offline)."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    tracker.monitor = SystemMetricsMonitor(tracker.run_id, sampling_interval=interval, tracking_uri=uri,
                                           resume_logging=resumed)
    tracker.monitor.start()


def summary_metrics(summary: dict, part: str) -> dict:
    """A training summary's (metrics.json) `best` or `final` validation as MLflow metrics `<part>/<stat>`."""
    return {f"{part}/{k}": v for k, v in (summary.get(part) or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


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
    diff = git("diff", "HEAD") or ""
    status = git("status", "--porcelain") or ""
    tracker.log_text(f"# git status --porcelain\n{status}\n# git diff HEAD\n{diff}", "context/git_diff.patch")
    tracker.log_text(pip_freeze(), "context/pip_freeze.txt")
    tracker.log_text(json.dumps(recipe_diff, indent=2) + "\n", "context/recipe_diff.json")
    tracker.log_text(" ".join(sys.argv) + "\n", "context/command.txt")


def gather_logs(tracker: Tracker, out_dir, names=LOG_FILES) -> None:
    """Copy the run's log files (those that exist) into the MLflow run under logs/."""
    for name in names:
        tracker.log_artifact(Path(out_dir) / name, "logs")


def open_run(run_name: str, tags: dict, params: dict) -> Tracker:
    """A new run in this project's experiment, for a stage that is not training (evaluate, compare)."""
    uri = tracking_uri()
    check_store(uri)
    quiet_mlflow()
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
