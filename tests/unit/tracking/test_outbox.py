"""repro.tracking.outbox: tracking never costs work (a failed publication waits for `repro publish`)."""
import json

from repro import config, tracking
from repro.evaluation.tracking_run import log_evaluation
from repro.tracking import outbox
from tests.conftest import REPO
from tests.unit.tracking.helpers import RECORD, BrokenClient, client


def test_failed_publication_leaves_a_marker_that_publish_pending_records(store, monkeypatch, caplog):
    cfg = config.load(REPO / "params.yaml", "256x192")
    monkeypatch.setattr(outbox, "open_run", lambda *a: tracking.Tracker(BrokenClient(), "r"))
    assert log_evaluation("evaluate_256x192", cfg, RECORD) is None
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
    assert log_evaluation("evaluate_256x192", cfg, RECORD) is None
    assert not (store / "mlflow.db").exists() and not (store / tracking.PENDING_DIR).exists()
