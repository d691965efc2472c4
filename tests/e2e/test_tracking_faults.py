"""Tracking never costs work (issue 11, item 2), probed through the real stage, CLI and training loop.

    scripts/test.sh -m slow tests/e2e/test_tracking_faults.py
"""
import contextlib
import http.server
import json
import subprocess
import sys
import threading

import pytest
from mlflow.tracking import MlflowClient

from repro import checkpoint, config, tracking
from repro.engine import train
from repro.model import build_cpm
from tests.e2e.conftest import make_project, repro_cmd, repro_env
from tests.unit.tracking.helpers import make_read_only

pytestmark = pytest.mark.slow
EVALUATE = [sys.executable, "-m", "stages.evaluate", "--config", "256x192", "--source", "trained",
            "--checkpoint", "models/untrained.pth"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A small smoke project with an untrained checkpoint to evaluate (the numbers do not matter here)."""
    workdir = make_project(tmp_path_factory.mktemp("faults"), {"profiles.smoke.data.synthetic.val_images": 20,
                                                               "profiles.smoke.data.synthetic.train_images": 32})
    cfg = config.load(workdir / "params.yaml", "256x192")
    checkpoint.save_checkpoint(workdir / "models/untrained.pth", build_cpm(cfg.model), {"config": cfg.to_dict()})
    return workdir


@contextlib.contextmanager
def broken_server():
    """An MLflow URL that answers /health (so the start-up check passes) and 503 to every API call."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()
        do_POST = do_PATCH = do_DELETE = do_GET

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def evaluate(project, **env):
    return subprocess.run(EVALUATE, cwd=project, env=repro_env(project, **env), capture_output=True, text=True,
                          timeout=600)


def test_store_failing_after_the_evaluation_keeps_the_metrics_and_publish_records_them_later(project):
    metrics = project / "reports/metrics/256x192.json"
    with broken_server() as url:
        done = evaluate(project, MLFLOW_TRACKING_URI=url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    assert done.returncode == 0, done.stderr
    assert metrics.is_file() and "AP" in json.loads(metrics.read_text())
    lines = [line for line in done.stderr.splitlines() if "MLflow failed" in line]
    assert len(lines) == 1 and "repro publish" in lines[0] and "Traceback" not in done.stderr
    markers = list((project / "outputs/unpublished").glob("evaluate_256x192-*.json"))
    assert len(markers) == 1

    published = subprocess.run(repro_cmd("publish"), cwd=project, env=repro_env(project), capture_output=True,
                               text=True, timeout=300)
    assert published.returncode == 0 and "published 1 run" in published.stdout, published.stderr
    assert not markers[0].exists()
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cpm-repro").experiment_id],
                              "attributes.run_name = 'evaluate_256x192'")
    assert [r.data.metrics["AP"] for r in runs] == [json.loads(metrics.read_text())["AP"]]


def test_read_only_store_is_found_before_the_evaluation(project, tmp_path):
    db = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()   # creates the schema
    out = project / "outputs/eval/256x192/predictions.json"
    out.unlink(missing_ok=True)
    undo = make_read_only(db)
    try:
        done = evaluate(project, MLFLOW_TRACKING_URI=f"sqlite:///{db}")
    finally:
        undo()
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and f"cannot write {db}" in done.stderr
    assert not out.exists()


def test_tracking_off_is_honoured_by_the_evaluate_stage(project):
    done = evaluate(project, MLFLOW_TRACKING_URI="http://127.0.0.1:9", REPRO_TRACKING="0")
    assert done.returncode == 0, done.stderr
    assert "MLflow" not in done.stderr


def test_a_store_failure_at_the_epoch_end_flush_keeps_last_pth(project, monkeypatch, tmp_path):
    """The store breaks after the run started: training finishes, last.pth is saved, the run is kept."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("REPRO_TRACKING", raising=False)
    real_start = tracking.start

    def start_then_break(*args, **kwargs):
        tracker = real_start(*args, **kwargs)
        def fail(*a, **k):
            raise ConnectionError("store went away")
        tracker.client.log_batch = fail
        return tracker
    monkeypatch.setattr(tracking, "start", start_then_break)
    params = config.override_params(config.read_params(project / "params.yaml"), {
        "profiles.smoke.train.epochs": 1, "profiles.smoke.train.val_interval": 1,
        "profiles.smoke.train.milestones": [1], "profiles.smoke.train.init_from": None})
    cfg = config.resolve(params, "256x192")
    train.train(cfg, project / "models/broken", resume=False)
    assert checkpoint.read_checkpoint(project / "models/broken/last.pth")["meta"]["train_state"]["epoch"] == 0
    markers = list((project / "outputs/unpublished").glob("train-256x192-smoke-*.json"))
    assert len(markers) == 1 and json.loads(markers[0].read_text())["kind"] == "train"
    monkeypatch.setattr(tracking, "start", real_start)
    done, failed = tracking.publish_pending(project / "outputs/unpublished")
    assert len(done) == 1 and not failed
    paths = {a.path for a in MlflowClient(tracking.tracking_uri()).list_artifacts(done[0], "checkpoints")}
    assert paths == {"checkpoints/best.pth"}
