"""DVC stage `compare`: every metrics file against the published table -> verdicts, reports, plots.

Writes <out-dir>/comparison.md, comparison.json (DVC metrics), plots/ (DVC plot data and PNGs), diagnosis/
(where the AP went between two prediction files, repro/report/diagnose.py) and an MLflow run carrying the
verdicts, the report and the diagnosis plots. The step is repro.report.compare.run_compare (also
`repro compare`).

    python -m stages.compare --metrics-dir reports/metrics --models-dir models --eval-dir outputs/eval --out-dir reports
"""
import argparse
import sys

from repro import config, errors
from repro.report import compare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics-dir", default="reports/metrics")
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--eval-dir", default="outputs/eval")
    parser.add_argument("--out-dir", default="reports")
    args = parser.parse_args(argv)
    compare.run_compare(config.load(args.params), metrics_dir=args.metrics_dir, models_dir=args.models_dir,
                        out_dir=args.out_dir, eval_dir=args.eval_dir)


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.compare"))
