"""DVC stage `plan`: the time and device-hours of every stage of the profile, estimated before training.

Probes the configured model on this machine (a warm-up and params.yaml plan.probe_steps timed steps per
config, a few seconds on the smoke profile) and writes <out-dir>/<profile>.json; `compare` puts it beside the measured times. The step
is repro.report.plan.run_plan (also `repro plan`).

    python -m stages.plan --out-dir reports/plan
"""
import argparse
import sys

from repro import errors
from repro.report import plan


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out-dir", default=str(plan.PLAN_DIR))
    args = parser.parse_args(argv)
    estimate, _ = plan.run_plan(args.params, out_dir=args.out_dir)
    print(plan.render(estimate))


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.plan"))
