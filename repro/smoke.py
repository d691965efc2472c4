"""The smoke pipeline as functions, for the baseline refresh and the planted-regression tests.

`dvc repro` is the front door; this runs the same steps (data -> train -> the evaluate stage's protocol and
record) in a scratch directory with params overridden by dotted key, as `dvc exp run -S
key=value` would, without touching the repo's data/, models/ or reports/.

    from repro import smoke
    metrics = smoke.run_smoke(seed=1, workdir="/tmp/smoke1")     # {"256x192": {...}, "384x288": {...}}
"""
import contextlib
import os
from pathlib import Path

import yaml

from repro import atomic, checkpoint as ckpt_io, config, machine, records
from repro.data import synthetic
from repro.engine import train
from repro.evaluation import evaluate, results

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@contextlib.contextmanager
def inside(workdir: Path):
    """Run the block with `workdir` (created) as the current directory, where params paths resolve."""
    previous = Path.cwd()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(previous)


def _write_params(workdir: Path, seed: int | None, overrides: dict | None) -> Path:
    params = config.override_params(config.read_params(REPO_PARAMS), overrides)
    params["profile"] = "smoke"
    if seed is not None:
        params["seed"] = seed
    train = params["profiles"]["smoke"].get("train") or {}
    if train.get("init_from") and not Path(train["init_from"]).is_absolute():
        # The scratch directory has no reports/: start from the checkout's reference checkpoints.
        train["init_from"] = str(REPO_PARAMS.parent / train["init_from"])
    return atomic.write_text(workdir / "params.yaml", yaml.safe_dump(params, sort_keys=False))


def run_smoke(seed: int, *, overrides: dict | None = None, workdir, names=None) -> dict:
    """Generate the smoke data, train each config in `workdir` and write its metrics record.

    The metrics are the evaluate stage's (repro.evaluation.evaluate.evaluate_checkpoint on best.pth, the
    smoke training's last epoch: it does not validate, params.yaml profiles.smoke.train.val_interval).

    Args:
        seed: the training seed (params.yaml `seed`); the synthetic data keeps its own seed.
        overrides: dotted params keys to change, e.g. {"configs.256x192.sigma": 3}.
        workdir: scratch directory (data/, models/, reports/ go there).
        names: configs to run (default: all of params.yaml `configs`).

    Returns:
        {config name: metrics dict read back from reports/metrics/<name>.json}.
    """
    workdir = Path(workdir).resolve()
    params_path = _write_params(workdir, seed, overrides)
    with inside(workdir):
        names = names or list(config.read_params(params_path)["configs"])
        first = config.load(params_path, names[0])
        if not (Path(first.data.root) / "annotations").is_dir():
            synthetic.generate(first.synthetic, first.data.root)
        made = {}
        for name in names:
            cfg = machine.resolve_precision(config.load(params_path, name))
            train.train(cfg, Path("models") / name, resume=False, track=False)
            made[name] = _evaluation_record(cfg, Path("models") / name / "best.pth")
        return made


def _evaluation_record(cfg, checkpoint: Path) -> dict:
    """The evaluate stage's record of `checkpoint` (its protocol and record, without MLflow or the ledger),
    written to reports/metrics."""
    metrics = evaluate.evaluate_checkpoint(cfg, checkpoint, records.eval_dir(cfg.name, "trained"))
    record = results.metrics_record(cfg, metrics, "trained", checkpoint, ckpt_io.training_facts(checkpoint))
    return records.read(records.write(records.metrics_path(cfg.name, "trained"), record))   # as JSON gives it back
