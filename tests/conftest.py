"""Shared test fixtures."""
import inspect
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

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


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook turns the marks into work units
def pytest_collection_modifyitems(config, items):
    """Tests that share one of our module- or session-scoped fixtures (the smoke pipeline, a trained run, a
    started cluster) get one xdist_group: under `--dist loadgroup` (scripts/test.sh) they run on one worker,
    so the fixture is built once, not once per worker. Tests that share none are spread one by one."""
    parent = {}

    def root(key):
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    sharing = []   # (item, the key of one of its shared fixtures)
    for item in items:
        keys = [k for k in (shared_fixture(item, name) for name in item.fixturenames) if k]
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
        if keys:
            sharing.append((item, keys[0]))
    for item, key in sharing:
        group = root(key)
        item.add_marker(pytest.mark.xdist_group(group))
        # (config.option.loadgroup: set in xdist's workers under --dist loadgroup)
        if getattr(config.option, "loadgroup", False) and not item.nodeid.endswith(f"@{group}"):
            # xdist 3.8.0 tells its scheduler the group by setting item._nodeid, which pytest 9.2 no longer
            # reads (pytest-xdist#1386: loadgroup then silently spreads a group over all workers); set the
            # id pytest 9.2 does read, as xdist meant to.
            item._id = NodeId.parse(f"{item.nodeid}@{group}")


def shared_fixture(item, name: str) -> str | None:
    """"where:name" for a fixture of this project's (its code under the root, not an installed package's) that
    outlives one test, None otherwise. pytest has no public way to read a fixture's scope; its FixtureDef (the
    last one overrides) carries it."""
    defs = item._fixtureinfo.name2fixturedefs.get(name)
    if not defs or defs[-1].scope == "function":
        return None
    fixture = defs[-1]
    source = Path(inspect.getsourcefile(fixture.func)).resolve()
    if not source.is_relative_to(item.config.rootpath) or source.is_relative_to(Path(sys.prefix).resolve()):
        return None   # pytest's own (tmp_path_factory) or a plugin's
    # One instance per session (or package) where it is defined, one per module for a module-scoped one.
    # No "@" in it (xdist appends "@group" to the test's id and splits it off at the last "@"), nor "::" (that
    # would read as one more level of the id in reports).
    return f"{item.module.__name__ if fixture.scope in ('module', 'class') else fixture.baseid or '.'}:{name}"


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
