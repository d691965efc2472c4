"""DVC stage `plan`: the time and device-hours of every stage of the profile, estimated before training.

Probes the configured model on this machine (a warm-up and 5 timed steps per config, a few seconds on the
smoke profile) and writes reports/plan/<profile>.json; `compare` puts it beside the measured times.

    python -m stages.plan
"""
import argparse

from repro import config
from repro.report import plan


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out-dir", default=str(plan.PLAN_DIR))
    args = parser.parse_args(argv)
    profile = config.load(args.params).profile
    estimate = plan.make_plan(args.params, profile)
    print(plan.render(estimate))
    plan.write(estimate, args.out_dir)


if __name__ == "__main__":
    main()
