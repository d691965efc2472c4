"""DVC stage `compare`: every metrics file against the published table -> verdicts, reports, plots.

Writes reports/comparison.md, reports/comparison.json (DVC metrics), reports/plots/ (DVC plot data
and PNGs), reports/diagnosis/ (where the AP went between two prediction files, repro/report/diagnose.py) and an
MLflow run carrying the verdicts, the report and the diagnosis plots.

    python -m stages.compare
"""
import argparse
import json
import sys
from pathlib import Path

from repro import config, errors, tracking
from repro.report import compare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    cfg = config.load(args.params)
    try:
        tracking.preflight()
    except tracking.TrackingError as e:
        raise SystemExit(f"stages.compare: error: {e}") from None
    summary = compare.compare(Path("reports/metrics"), Path("models"), Path("reports"), cfg.profile,
                              eval_dir=Path("outputs/eval"), gt_path=cfg.data.val_ann)
    pairs = [p["name"] for p in json.loads(Path("reports/diagnosis/pairs.json").read_text())]   # this run's
    plots = [(Path("reports/diagnosis", name, "keypoint_oks.png"), f"diagnosis/{name}") for name in pairs]
    tracking.log_comparison(cfg, summary, Path("reports/comparison.md"), artifacts=plots, also=lambda tracker:
                            compare.log_learning_curve(tracker, summary["learning_curve"], Path("reports/plots")))
    tracking.close_pipeline(summary["verdict"])


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.compare"))
