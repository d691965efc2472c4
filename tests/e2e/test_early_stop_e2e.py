"""Opt-in early stop (train.stop_below_published) end to end: a tiny run against a reference log it cannot
reach stops at its first validation from `from_epoch` on, under one process and under two torchrun processes,
keeps its checkpoints and says why; run again with the stop still on, it stays stopped.

    scripts/test.sh -m slow tests/e2e/test_early_stop_e2e.py
"""
import json

import pytest

from repro import checkpoint, config
from tests.e2e.conftest import SHORT, TRAIN, make_project, repro_cmd, run

pytestmark = pytest.mark.slow

# Fewer training images than SHORT (4 iterations an epoch), a validation every epoch, stop from epoch 2 on.
STOP = {**SHORT, "profiles.smoke.data.synthetic.train_images": 32, "profiles.smoke.train.val_interval": 1,
        "recipe.train.stop_below_published": {"margin": 0.05, "from_epoch": 2}}


def reference_log(project):
    """A reference curve no tiny run reaches (val AP 0.9 at every epoch), where published.yaml looks for it."""
    path = project / config.published()["learning_curve"]["logs"]["smoke"]["256x192"]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"env_info": "test", "seed": 0}] + [{"mode": "val", "epoch": e, "AP": 0.9} for e in range(1, 7)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.parametrize("nproc", ["1", "2"])
def test_run_below_the_reference_stops_at_from_epoch_and_keeps_its_checkpoints(tmp_path, nproc):
    project = make_project(tmp_path, STOP)
    reference_log(project)
    cmd = repro_cmd(*TRAIN, "--out", "models/stop", "--no-track")
    done = run(cmd, project, REPRO_NPROC=nproc, OMP_NUM_THREADS="1")
    out = project / "models/stop"
    metrics = json.loads((out / "metrics.json").read_text())
    verdict = metrics["stopped_early"]
    assert metrics["world_size"] == int(nproc)
    assert metrics["epochs"] == 2 and verdict["epoch"] == 2, metrics   # epoch 1 was below too: before from_epoch
    assert verdict["reference"] == 0.9 and verdict["margin"] == 0.05 and verdict["AP"] < 0.85
    assert "stopping early (train.stop_below_published): val AP" in done.stderr
    assert len((out / "val_history.csv").read_text().splitlines()) == 1 + 2
    last = checkpoint.read_checkpoint(out / "last.pth")["meta"]["train_state"]
    assert last["epoch"] == 1 and last["stopped_early"] == verdict          # 0-based epoch 1 = epoch 2
    assert (out / "best.pth").is_file()
    # The same command again: the verdict stands while the stop is on, no epoch is trained.
    run(cmd, project, REPRO_NPROC=nproc, OMP_NUM_THREADS="1")
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
