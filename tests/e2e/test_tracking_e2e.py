"""The MLflow record of a real training run, read back from its SQLite store (issue: training, item 6).

    scripts/test.sh -m slow tests/e2e/test_tracking_e2e.py
"""
import subprocess

import pytest
import yaml
from mlflow.tracking import MlflowClient

from repro import checkpoint, tracking
from tests.conftest import REPO
from tests.e2e.conftest import TRAIN, repro_cmd, repro_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def record(short_project, short_run):
    """short_run's MLflow run (the torchrun and kill/resume tests add runs of the same name to the store)."""
    client = MlflowClient(f"sqlite:///{short_project / 'mlflow.db'}")
    run = client.get_run(checkpoint.read_checkpoint(short_run / "last.pth")["meta"]["mlflow_run_id"])
    assert run.info.run_name == "train-256x192-smoke" and run.data.tags["repro.config"] == "256x192"
    return client, run


def artifact_paths(client, run_id, path=None) -> set:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_run_has_the_resolved_configuration_as_params(record, short_run):
    _, run = record
    resolved = tracking.flatten(yaml.safe_load((short_run / "config.yaml").read_text()))
    assert run.data.params == {k: str(v) for k, v in resolved.items()}
    assert run.data.params["train.epochs"] == "3" and run.data.params["codec.sigma"] == "2.0"


def test_run_has_per_iteration_loss_and_lr_and_per_epoch_metrics_with_steps(record, short_run):
    client, run = record
    import json
    iterations = json.loads((short_run / "metrics.json").read_text())["iterations"]
    for name in ("train/loss", "train/lr"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, name)]
        assert sorted(steps) == list(range(1, iterations + 1)), name
    lrs = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "train/lr"), key=lambda m: m.step)]
    assert lrs[0] < lrs[1] < lrs[9]                           # the warm-up (SHORT: 10 iterations) is visible
    for name in ("epoch/loss", "epoch/acc_pose"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, name)) == [1, 2, 3]
    for name in ("val/AP", "val/AR"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, name)) == [3], name


def test_live_run_ends_with_its_best_validation_as_best_metrics(record, short_run):
    """best/* (the README's metric names) on a live run, as on one published late; no final/* beside val/*."""
    _, run = record
    import json
    best = json.loads((short_run / "metrics.json").read_text())["best"]
    assert run.data.metrics["best/AP"] == best["AP"] and run.data.metrics["best/epoch"] == best["epoch"]
    assert not any(k.startswith("final/") for k in run.data.metrics)


def test_run_has_checkpoint_log_and_context_artifacts(record):
    client, run = record
    paths = artifact_paths(client, run.info.run_id)
    assert {"checkpoints/best.pth", "logs/train_log.jsonl", "logs/val_history.csv", "logs/metrics.json",
            "logs/config.yaml", "context/git_diff.patch", "context/pip_freeze.txt",
            "context/recipe_diff.json"} <= paths
    freeze = client.download_artifacts(run.info.run_id, "context/pip_freeze.txt")
    assert "torch==" in open(freeze).read()
    # best.pth is also a registered MLflow model (repro/tracking/models.py; its loading is tests/unit/tracking/test_models.py)
    assert run.data.tags["repro.model"].startswith("models:/cpm-256x192/")


def test_run_has_code_environment_hardware_and_data_tags(record, short_project):
    _, run = record
    tags = run.data.tags
    head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert tags["git.commit"] == (head.stdout.strip() or "unknown")   # "unknown" in a repository without commits
    assert tags["git.dirty"] in ("true", "false")
    import torch
    assert tags["torch.version"] == torch.__version__ and "torch.cuda" in tags and "torch.cudnn" in tags
    assert tags["hardware.cpu"] and tags["hardware.gpus"] == "none" and tags["repro.world_size"] == "1"
    assert tags["repro.seed"] == "0" and tags["repro.recipe"] == "open" and "repro.pipeline" in tags
    ann = short_project / "data/smoke/annotations/person_keypoints_val2017.json"
    assert tags["data.sha256.val_ann"] == tracking.sha256_file(ann)
    assert {"data.sha256.train_ann", "data.sha256.det_file"} <= tags.keys()
    assert run.info.status == "FINISHED"
    inputs = MlflowClient(f"sqlite:///{short_project / 'mlflow.db'}").get_run(run.info.run_id).inputs
    assert {i.dataset.name for i in inputs.dataset_inputs} == {"train_ann", "val_ann", "det_file"}
    assert "system/cpu_utilization_percentage" in run.data.metrics   # sampled every second while it trained


def test_unreachable_store_fails_before_training(short_project):
    done = subprocess.run(repro_cmd(*TRAIN, "--out", "models/unreachable"), cwd=short_project,
                          env=repro_env(short_project, MLFLOW_TRACKING_URI="http://127.0.0.1:9"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "http://127.0.0.1:9" in done.stderr and "unreachable" in done.stderr
    assert not (short_project / "models/unreachable/train_log.jsonl").exists()
