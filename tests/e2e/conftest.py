"""End-to-end fixtures: a scratch project (params.yaml + tiny synthetic data) and the real `repro` CLI.

Every test here runs real processes (the `repro` CLI, torchrun, dvc, mlflow) in a temporary directory,
never in the repository's own data/, models/, reports/ or mlflow.db.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro import config
from repro.data import synthetic
from tests.conftest import REPO

# A short run from scratch (the smoke profile itself fine-tunes the reference checkpoint): the smoke model on 96
# training and 20 val images, 3 epochs of a dozen iterations, validated once at the end. It is what one process
# (and two torchrun processes, and a killed and resumed process) trains, and what the MLflow record is read from.
# Learning at this length is the loss and the training PCK accuracy, not val AP: measured (seed 0,
# benchmarks/short_run_learning.py) the epoch loss falls from 0.0300 to 0.0280 (bf16) and 0.0298 to 0.0279
# (fp32), the accuracy rises from 0.015 to 0.030 (bf16) and 0.009 to 0.033 (fp32). Whether training reaches the
# accuracy it should is tier S's question, on the pipeline's fine-tune (tests/gates).
SHORT = {
    "profiles.smoke.train.init_from": None,
    "profiles.smoke.data.synthetic.train_images": 96,
    "profiles.smoke.data.synthetic.val_images": 20,
    "profiles.smoke.train.warmup_iters": 10,
    "profiles.smoke.train.epochs": 3,
    "profiles.smoke.train.milestones": [2, 3],
    "profiles.smoke.train.val_interval": 3,
    "profiles.smoke.train.log_interval": 4,
}


def repro_env(workdir: Path, **extra) -> dict:
    """The environment of a `repro` subprocess: the checkout importable, MLflow in `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REPRO_"))}
    env.update(PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}",
               DVC_NO_ANALYTICS="1")
    env.update(extra)
    return env


def run(cmd: list, workdir: Path, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    """Run `cmd` in `workdir`; on failure, the assertion shows its output."""
    done = subprocess.run(cmd, cwd=workdir, env=repro_env(workdir, **env), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def repro_cmd(*args) -> list:
    return [sys.executable, "-m", "repro.cli", *map(str, args)]


def make_project(workdir: Path, overrides: dict) -> Path:
    """params.yaml (the repo's, with dotted overrides) and its synthetic data in `workdir`."""
    params = config.override_params(config.read_params(REPO / "params.yaml"), overrides)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cfg = config.load(workdir / "params.yaml", "256x192")
    synthetic.generate(cfg.synthetic, workdir / cfg.data.root)
    return workdir


TRAIN = ["train", "--config", "256x192"]


@pytest.fixture(scope="session")
def short_project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("short"), SHORT)


@pytest.fixture(scope="session")
def short_run(short_project) -> Path:
    """One uninterrupted single-process `repro train` of SHORT, recorded in short_project/mlflow.db: its out dir.
    MLflow samples system metrics every second (its own setting; 10 s by default), as the run may be shorter."""
    run(repro_cmd(*TRAIN, "--out", "models/one"), short_project, MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1")
    return short_project / "models/one"
