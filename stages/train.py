"""DVC stage `train@<config>`: train one input size with the profile's recipe.

One worker runs in this process; several (REPRO_NPROC, or every visible GPU) run under torchrun.
Writes models/<config>/{best.pth, last.pth, metrics.json, val_history.csv, train_log.jsonl, config.yaml}.
The step is repro.engine.train.run_train (also `repro train`).

The run works in models/<config>/in_progress until it has finished: DVC deletes a stage's outs before running
it again, and that directory is none of them, so a killed run resumes there on the next `dvc repro`.

    python -m stages.train --config 256x192 --out models/256x192
"""
import argparse
import sys
from pathlib import Path

from repro import errors
from repro.engine import train

WORK_DIR = "in_progress"   # below --out; not a DVC out of the stage


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--config", required=True, help="input size, a key of params.yaml configs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    train.run_train(["--params", args.params, "--config", args.config, "--out", args.out,
                     "--work-dir", str(Path(args.out) / WORK_DIR)])


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.train"))
