"""How far apart one and two training processes land on the from-scratch e2e run (SHORT, tests/e2e/conftest.py),
beside how far apart seeds land: the numbers behind the loss band of
tests/e2e/test_train_e2e.py::test_two_torchrun_processes_train_one_model.

    .venv/bin/python benchmarks/short_run_world_sizes.py

For seeds 0, 1, 2: `repro train` on SHORT in one process (batch 16), and under torchrun in two (batch 8 each, the
same global batch and steps). Records each epoch's mean loss, the largest relative gap between the two world
sizes, and the largest relative gap between seeds of the one-process run. Writes
reports/benchmarks/short_run_world_sizes.json.
"""
import datetime
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from repro import atomic, machine  # noqa: E402
from tests.e2e.conftest import SHORT, TRAIN, make_project, repro_cmd, run  # noqa: E402
from tests.e2e.test_train_e2e import epoch_losses  # noqa: E402

SEEDS = (0, 1, 2)


def gap(a: list, b: list) -> float:
    """The largest relative difference of two runs' epoch losses (relative to b)."""
    return max(abs(x - y) / y for x, y in zip(a, b))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="short-world-") as scratch:
        project = make_project(Path(scratch), SHORT)
        one, two = {}, {}
        for seed in SEEDS:
            run(repro_cmd(*TRAIN, "--out", f"models/one{seed}", "--no-track", "--set", f"seed={seed}"), project)
            run(repro_cmd(*TRAIN, "--out", f"models/two{seed}", "--no-track", "--set", f"seed={seed}",
                          "--set", "train.batch_per_gpu=8"), project, REPRO_NPROC="2", OMP_NUM_THREADS="1")
            one[seed], two[seed] = epoch_losses(project / f"models/one{seed}"), epoch_losses(project / f"models/two{seed}")
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine.fingerprint(), "one_process": one, "two_processes": two,
              "gap_two_vs_one": {s: gap(two[s], one[s]) for s in SEEDS},
              "gap_between_seeds_one_process": max(gap(one[a], one[b]) for a in SEEDS for b in SEEDS if a != b)}
    atomic.write_json(REPO / "reports/benchmarks/short_run_world_sizes.json", result)
    print({k: result[k] for k in ("gap_two_vs_one", "gap_between_seeds_one_process")})


if __name__ == "__main__":
    main()
