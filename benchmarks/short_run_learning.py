"""What the from-scratch e2e run (SHORT, tests/e2e/conftest.py) learns, per training precision, and what it does
with weights that barely move: the numbers behind the thresholds of
tests/e2e/test_train_e2e.py::test_one_process_training_from_scratch_lowers_the_loss_and_raises_the_training_accuracy.

    .venv/bin/python benchmarks/short_run_learning.py

Each variant runs `repro train` on SHORT in a scratch directory (seed 0) and records the mean loss and training
PCK accuracy of each epoch. Writes reports/benchmarks/short_run_learning.json.
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

VARIANTS = {
    "amp auto": {},
    "fp32": {"profiles.smoke.train.amp": "none"},
    "lr 1e-9 (weights barely move)": {"recipe.train.lr": 1e-9},
}


def measure(overrides: dict, workdir: Path) -> dict:
    workdir.mkdir(parents=True)
    project = make_project(workdir, {**SHORT, **overrides})
    run(repro_cmd(*TRAIN, "--out", "models/one", "--no-track"), project)
    out = project / "models/one"
    losses, accuracy = epoch_losses(out), epoch_losses(out, "acc_pose")
    return {"loss": losses, "acc_pose": accuracy, "loss_last_over_first": losses[-1] / losses[0],
            "acc_last_over_first": accuracy[-1] / accuracy[0]}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="short-learning-") as scratch:
        results = {name: measure(overrides, Path(scratch) / str(i))
                   for i, (name, overrides) in enumerate(VARIANTS.items())}
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine.fingerprint(), "overrides": VARIANTS, "results": results,
              "test_asserts": "loss_last_over_first < 0.97 and acc_last_over_first > 1.5"}
    atomic.write_json(REPO / "reports/benchmarks/short_run_learning.json", result)
    for name, r in results.items():
        print(f"{name}: loss x{r['loss_last_over_first']:.3f}, PCK x{r['acc_last_over_first']:.2f}")


if __name__ == "__main__":
    main()
