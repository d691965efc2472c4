import pytest


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite store; markers of failed publications go to tmp_path/outputs/unpublished."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("REPRO_TRACKING", raising=False)
    monkeypatch.setenv("REPRO_PIPELINE_ID", "test-pipeline")
    return tmp_path
