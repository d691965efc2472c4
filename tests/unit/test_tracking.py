"""repro.tracking: tracking never costs work, dead runs are closed, runs are grouped and viewable."""
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from repro import config, tracking
from tests.conftest import REPO


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite store; markers of failed publications go to tmp_path/outputs/unpublished."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("REPRO_TRACKING", raising=False)
    monkeypatch.setenv("REPRO_PIPELINE_ID", "test-pipeline")
    return tmp_path


def client():
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking.tracking_uri())


RECORD = {"AP": 0.4321, "AP50": 0.8, "source": "trained", "checkpoint": "x.pth", "config": "256x192"}


def make_read_only(path):
    """Read-only even for root (CI runs as root): the immutable attribute; else plain permissions."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a filesystem without chattr +i: cannot make a read-only file")
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o444)
    return lambda: path.chmod(0o644)


def test_check_store_finds_a_read_only_database(tmp_path):
    db = tmp_path / "mlflow.db"
    con = sqlite3.connect(db)
    con.execute("create table t (x)")
    con.commit()
    con.close()
    tracking.check_store(f"sqlite:///{db}")          # writable: passes, and changes nothing
    assert sqlite3.connect(db).execute("pragma user_version").fetchone() == (0,)
    undo = make_read_only(db)
    try:
        with pytest.raises(tracking.TrackingError, match=f"cannot write {db}.*readonly"):
            tracking.check_store(f"sqlite:///{db}")
    finally:
        undo()


class BrokenClient:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("store went away")
        return fail


def test_a_training_tracker_reports_the_first_failure_once_and_goes_on():
    errors = []
    tracker = tracking.Tracker(BrokenClient(), "run1", on_error=errors.append)
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.flush()                                   # fails: reported, not raised
    tracker.log_text("x", "a.txt")
    tracker.end("FINISHED")
    assert len(errors) == 1 and isinstance(errors[0], ConnectionError) and tracker.failed


def test_a_tracker_without_on_error_raises_tracking_error():
    with pytest.raises(tracking.TrackingError, match="store went away"):
        tracking.Tracker(BrokenClient(), "run1").log_text("x", "a.txt")


def test_failed_publication_leaves_a_marker_that_publish_pending_records(store, monkeypatch, caplog):
    cfg = config.load(REPO / "params.yaml", "256x192")
    monkeypatch.setattr(tracking, "_open_run", lambda *a: tracking.Tracker(BrokenClient(), "r"))
    assert tracking.log_evaluation("evaluate_256x192", cfg, RECORD) is None
    markers = list((store / tracking.PENDING_DIR).glob("evaluate_256x192-*.json"))
    assert len(markers) == 1 and "store went away" in json.loads(markers[0].read_text())["error"]
    assert "repro publish" in caplog.text and markers[0].name in caplog.text
    monkeypatch.undo()
    monkeypatch.chdir(store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    done, failed = tracking.publish_pending(store / tracking.PENDING_DIR)
    assert len(done) == 1 and failed == [] and not markers[0].exists()
    run = client().get_run(done[0])
    assert run.info.run_name == "evaluate_256x192" and run.data.metrics["AP"] == 0.4321


def test_tracking_off_records_nothing(store, monkeypatch):
    monkeypatch.setenv("REPRO_TRACKING", "0")
    cfg = config.load(REPO / "params.yaml", "256x192")
    assert tracking.log_evaluation("evaluate_256x192", cfg, RECORD) is None
    assert not (store / "mlflow.db").exists() and not (store / tracking.PENDING_DIR).exists()


def test_experiment_opens_on_the_runs_table_with_the_saved_view(store):
    cfg = config.load(REPO / "params.yaml", "256x192")
    tracking.log_evaluation("evaluate_256x192", cfg, RECORD)
    tags = client().get_experiment_by_name("cpm-repro").tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(tags[f"mlflow.sharedViewState.{tracking.VIEW_KEY}"])
    assert json.loads(view["state"])["selectedColumns"] == tracking.VIEW_COLUMNS
    assert {"metrics.`AP`", "metrics.`AR`", "tags.`repro.verdict`"} <= set(tracking.VIEW_COLUMNS)


def test_stage_runs_of_one_pipeline_are_children_of_one_parent_closed_by_compare(store):
    cfg = config.load(REPO / "params.yaml", "256x192")
    ids = [tracking.log_evaluation(name, cfg, RECORD) for name in ("evaluate_a", "evaluate_b")]
    parents = {client().get_run(i).data.tags["mlflow.parentRunId"] for i in ids}
    assert len(parents) == 1
    parent = client().get_run(parents.pop())
    assert parent.data.tags["repro.stage"] == "pipeline" and parent.info.status == "RUNNING"
    tracking.close_pipeline("pass")
    parent = client().get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["repro.verdict"] == "pass"


def test_a_running_run_whose_process_is_gone_is_marked_killed(store):
    cfg = config.load(REPO / "params.yaml", "256x192")
    live = tracking.log_evaluation("evaluate_live", cfg, RECORD)
    c = client()
    c.update_run(live, status="RUNNING")               # owned by this (live) process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    orphan = tracking.log_evaluation("evaluate_orphan", cfg, RECORD)
    c.update_run(orphan, status="RUNNING")
    c.set_tag(orphan, "repro.owner.pid", dead)          # as if its process had been killed
    tracking.log_evaluation("evaluate_next", cfg, RECORD)   # the next run sweeps
    assert c.get_run(orphan).info.status == "KILLED"
    assert c.get_run(live).info.status == "RUNNING"


def test_evaluation_run_has_the_val_annotations_and_det_file_as_dataset_inputs(store, tmp_path):
    cfg = config.load(REPO / "params.yaml", "256x192")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(tmp_path)))
    data = {"val_ann": cfg.data.val_ann, "det_file": cfg.data.det_file}   # train_ann absent: not an input
    for path in data.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("[]")
    run = client().get_run(tracking.log_evaluation("evaluate_256x192", cfg, RECORD))
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"val_ann", "det_file"}
    assert inputs["val_ann"].dataset.digest == tracking.sha256_file(data["val_ann"])[:32]
    assert {t.key: t.value for t in inputs["det_file"].tags}["mlflow.data.context"] == "evaluation"


def test_system_metrics_are_sampled_into_a_run_until_it_ends(store):
    tracker = tracking._open_run("train-x", {}, {})
    tracking.start_system_metrics(tracker, tracking.tracking_uri(), interval=0.5)
    c = client()
    for _ in range(240):   # hang guard only: the first sample comes after about one interval
        if any(k.startswith("system/") for k in c.get_run(tracker.run_id).data.metrics):
            break
        time.sleep(0.25)
    tracker.end("FINISHED")
    metrics = c.get_run(tracker.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics and "system/system_memory_usage_megabytes" in metrics
    assert tracker.monitor is None
