"""DVC stages `evaluate@`, `evaluate_published@` and `evaluate_reference@<config>`: the published evaluation
protocol, and every record of it (repro.evaluation.run.run_evaluate, also `repro evaluate`).

--source trained: our checkpoint (models/<config>/best.pth). --source published: the mmpose checkpoint of
this config, downloaded and sha256-verified into --published-dir (full profile only; in the smoke profile
there is none to evaluate and the metrics file says so). --source reference: the committed smoke reference
checkpoint of reports/reference/smoke.json (tier E; smoke profile only). Writes <eval-dir>/<tag>/
{predictions,metrics}.json, <metrics-dir>/<tag>.json (read by `compare`; tag = <config>, published_<config>
or reference_<config>), an MLflow run, and for a trained model one entry of the run's seed ledger
<ledger-dir>/<profile>_<config>.json (outputs/ledger: git-ignored; the committed reports/ledger is written on request).

    python -m stages.evaluate --config 256x192 --source trained --checkpoint models/256x192/best.pth
    python -m stages.evaluate --config 256x192 --source published
    python -m stages.evaluate --config 256x192 --source reference
"""
import argparse
import sys

from repro import config, errors, records
from repro.evaluation import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--config", required=True)
    parser.add_argument("--source", required=True, choices=records.SOURCES)
    parser.add_argument("--checkpoint", help="required with --source trained")
    # Each stage declares its own args, alike stages/compare.py's: a shared helper would be a dep outside repro/.
    parser.add_argument("--metrics-dir", default="reports/metrics")
    parser.add_argument("--eval-dir", default="outputs/eval")
    parser.add_argument("--ledger-dir", default="outputs/ledger")
    parser.add_argument("--published-dir", default="models/published")
    args = parser.parse_args(argv)
    cfg = config.load(args.params, args.config)
    run.run_evaluate(cfg, args.source, args.checkpoint,
                     metrics_path=records.metrics_path(cfg.name, args.source, args.metrics_dir),
                     eval_dir=records.eval_dir(cfg.name, args.source, args.eval_dir), published_dir=args.published_dir,
                     ledger_dir=args.ledger_dir)


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.evaluate"))
