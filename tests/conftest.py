"""Shared test fixtures."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from repro import config

REPO = Path(__file__).resolve().parents[1]
# The input sizes, from params.yaml (checked against published.yaml): tests loop over these, never a literal pair.
CONFIGS = config.input_sizes(REPO / "params.yaml")
# The real COCO sample lives in ../shared beside a checkout (CI has it; a user's clone may not).
COCO_SAMPLE = REPO.parent / "shared" / "coco_sample"


@pytest.fixture
def coco_sample() -> Path:
    if not (COCO_SAMPLE / "test_coco.json").is_file():
        pytest.skip(f"COCO sample not found at {COCO_SAMPLE} (../shared beside the checkout)")
    return COCO_SAMPLE


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def fresh_copy(dest: Path) -> Path:
    """What a clone of this checkout holds (tracked and new unignored files), committed in a new repo."""
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    # The already-built environment: scripts/env.sh finds its stamp up to date and installs nothing.
    (dest / ".venv").symlink_to(REPO / ".venv")
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "fresh clone", cwd=dest)
    return dest


HANG_GUARD_S = 3600   # only stops a hung run; the expected time is in reports/benchmarks/pipeline_cpu.md


def user_env(**extra) -> dict:
    """A user's environment: none of the test's own MLFLOW_/REPRO_/VIRTUAL_ENV settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REPRO_", "VIRTUAL_ENV"))}
    return {**env, **extra}


def sh(cmd, cwd, timeout=HANG_GUARD_S, check: bool = True, **env) -> subprocess.CompletedProcess:
    """Run `cmd` as a user would (user_env, plus `env`); assert it succeeds unless `check` is False."""
    done = subprocess.run(cmd, cwd=cwd, env=user_env(**env), capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{cmd} exited {done.returncode}\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory):
    """(project dir, seconds) of the README's main command, `scripts/repro.sh`, in a fresh copy: one run of
    the whole smoke pipeline shared by the end-to-end and gate tests."""
    project = fresh_copy(tmp_path_factory.mktemp("clone"))
    start = time.monotonic()
    sh(["scripts/repro.sh"], project)
    return project, time.monotonic() - start


def assert_plot_png(path) -> None:
    """`path` is a PNG that decodes to a drawn figure: wider than 100 px and more than two colours (a blank or
    truncated file fails, where its first bytes alone would pass)."""
    import numpy as np
    from matplotlib import image
    pixels = image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100, (path, pixels.shape)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 2, f"{path}: a blank image"
