"""`repro <command>`: the library's entry points, the same functions the DVC stages call.

    repro data [--part val|train]    # synthesize (smoke) or download (full) data/<profile> (default: both parts)
    repro train --config 256x192 --out models/256x192 [--profile full]   # torchrun for several GPUs
    repro evaluate --config 256x192 --checkpoint FILE [--gt-bbox] [--out-dir DIR] [--ledger-dir DIR]   # as the stage
    repro download-published --config 256x192 [--dest models/published]
    repro compare                    # reports/comparison.{md,json} and plots
    repro gate [--strict]            # tolerance gates (exit 1 on a failed tier)
    repro drift [--rev REV]          # current metrics vs the committed baseline
    repro baseline --seeds 0 1 2     # refresh the smoke baseline on purpose
    repro plan [--profile full] [--gpu NAME] [--check]   # time and device-hours per stage, before a run
    repro diagnose A.json B.json --gt ANN.json [--out reports/diagnosis]   # where the AP went, A vs B
    repro reference [--from-checkpoints A B] [--measure-noise]   # tier E's committed smoke reference
    repro publish                    # record in MLflow the runs kept after a tracking failure
    repro record [--push] [-m TEXT]  # commit a full-profile run's dvc.lock, metrics, comparison (reports/records/)

Modules are imported per command, so `repro --help` stays fast. Bad input ends with one line on stderr
and exit code 2 (repro.errors); `--debug` or REPRO_DEBUG=1 adds the traceback.
"""
import argparse
import json
import sys
from pathlib import Path


def _data(args):
    from repro import config
    from repro.data import prepare
    cfg = config.load(args.params, profile=args.profile)
    made = prepare.run_data(cfg, args.part, det_file=args.det_file)
    if cfg.data.source == "synthetic":
        print(json.dumps(made, indent=2, default=str))


def _evaluate(args):
    from repro import config
    from repro.evaluation import run
    cfg = config.load(args.params, args.config, profile=args.profile)
    stem = Path(args.checkpoint).stem if args.checkpoint else args.source
    out_dir = Path(args.out_dir or f"outputs/eval/{stem}_{cfg.name}")
    record = run.run_evaluate(cfg, args.source, args.checkpoint, eval_dir=out_dir,
                              metrics_path=args.metrics or out_dir / "record.json",
                              published_dir=args.published_dir, ledger_dir=args.ledger_dir,
                              use_gt_bbox=True if args.gt_bbox else None)
    print(json.dumps(record, indent=2, default=str))


def _download_published(args):
    from repro import config
    from repro.data.download import fetch_published
    print(fetch_published(config.published()["models"][args.config], Path(args.dest), mirror=config.mirror()))


def _compare(args):
    from repro import config
    from repro.report import compare
    cfg = config.load(args.params, profile=args.profile)
    compare.run_compare(cfg, metrics_dir=args.metrics_dir, models_dir=args.models_dir, out_dir=args.out_dir,
                        eval_dir=args.eval_dir)
    print((Path(args.out_dir) / "comparison.md").read_text())


def _publish(args):
    from repro import tracking
    try:
        tracking.check_store(tracking.tracking_uri())
    except tracking.TrackingError as e:
        raise SystemExit(f"repro publish: error: {e}") from None
    done, failed = tracking.publish_pending()
    print(f"published {len(done)} run(s)" + (f"; {len(failed)} still pending" if failed else ""))
    for marker, error in failed:
        print(f"{marker}: {error}", file=sys.stderr)
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description=__doc__,  # lists train/gate/... too
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help_, config=False):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--params", default="params.yaml")
        p.add_argument("--profile", default=None, help="override params.yaml's profile (smoke | full)")
        if config:
            p.add_argument("--config", required=True, help="256x192 or 384x288")
        p.set_defaults(func=func)
        return p

    p = command("data", _data, "make data/<profile>")
    p.add_argument("--det-file")
    p.add_argument("--part", default="all", choices=("val", "train", "all"),
                   help="val: val2017, annotations, detection boxes (what evaluation reads); train: train2017")
    p = command("evaluate", _evaluate, "evaluate a checkpoint and write its records, as the evaluate stage does",
                config=True)
    p.add_argument("--source", default="trained", choices=("trained", "published", "reference"))
    p.add_argument("--checkpoint", help="the checkpoint of --source trained (ours or a published mmpose file)")
    p.add_argument("--gt-bbox", action="store_true", help="GT boxes instead of the detection file")
    p.add_argument("--out-dir", help="predictions.json, metrics.json (default: outputs/eval/<checkpoint>_<config>)")
    p.add_argument("--metrics", help="the metrics record (default: OUT_DIR/record.json; the stage's: "
                                     "reports/metrics/<tag>.json)")
    p.add_argument("--ledger-dir", help="also append a trained model to this seed ledger (the stage's: reports/ledger)")
    p.add_argument("--published-dir", default="models/published")
    command("download-published", _download_published, "fetch a published checkpoint", config=True) \
        .add_argument("--dest", default="models/published")
    p = command("compare", _compare, "compare metrics with the published table")
    for flag, default in (("--metrics-dir", "reports/metrics"), ("--models-dir", "models"),
                          ("--eval-dir", "outputs/eval"), ("--out-dir", "reports")):
        p.add_argument(flag, default=default)
    command("publish", _publish, "record in MLflow the runs kept in outputs/unpublished/ after a tracking failure")
    return parser


def _baseline(argv) -> int:
    """Each seed's smoke run goes to a scratch directory, so the repo's data/, models/, reports/ stay as they are."""
    import tempfile

    from repro import pipeline
    from repro.report import gates
    with tempfile.TemporaryDirectory(prefix="repro-baseline-") as scratch:
        return gates.baseline_main(argv, lambda seed, amp: pipeline.run_smoke(
            seed, workdir=Path(scratch) / f"{amp}-{seed}", overrides={"profiles.smoke.train.amp": amp}))


def _main_of(module: str, func: str = "main"):
    """`repro <command> ARGV` -> `module.func(ARGV)`, the module imported only when the command runs."""
    def run(argv) -> int:
        import importlib
        return getattr(importlib.import_module(module), func)(argv)
    return run


# Commands that own their argument parsing: `repro train ...` is `python -m repro.engine.train ...`.
DELEGATED = {"train": _main_of("repro.engine.train", "run_train"), "baseline": _baseline,
             "gate": _main_of("repro.report.gates", "gate_main"), "drift": _main_of("repro.report.gates", "drift_main"),
             "plan": _main_of("repro.report.plan", "plan_main"), "diagnose": _main_of("repro.report.diagnose"),
             "reference": _main_of("repro.reference_build"), "record": _main_of("repro.report.record")}


def _dispatch(argv: list):
    if argv and argv[0] in DELEGATED:
        return DELEGATED[argv[0]](argv[1:])
    args = _parser().parse_args(argv)
    return args.func(args)


def main(argv=None) -> int:
    """`repro <command> ...` under the project's error wrapper; returns the exit code."""
    from repro import errors
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    return errors.run_main(_dispatch, argv, prog=f"repro {command}" if command else "repro")


if __name__ == "__main__":
    sys.exit(main())
