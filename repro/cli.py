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

PUBLISHED_PATH = Path(__file__).with_name("published.yaml")   # config's, without importing it (yaml)


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


def _gate(args):
    """Print every check; exit 1 on a failing check (strict: also a required tier not run)."""
    from repro import config
    from repro.report import checks, equivalence, tables, tiers
    unknown = sorted(set(args.tier or ()) - set(tiers.NAMES))
    if unknown:
        raise SystemExit(f"repro gate: error: --tier {' '.join(unknown)}: not a tier (one of {' '.join(tiers.NAMES)})")
    inputs = checks.load_inputs(args.metrics_dir, args.published, args.baseline)
    required = tiers.required_tiers(config.current_profile(args.params), args.tier)
    results = tiers.check_all(inputs, args.tier or tiers.NAMES)
    strict = tiers.strict_enabled(args.strict)
    problems = tiers.failures(results, required, strict, inputs.published["tolerances"]["C"]["suspect_fails"])
    print(tables.render_results(results))
    equiv = equivalence.equivalences(inputs, args.tier or required)
    if equiv:
        print(f"\nEquivalence over retrains (seed ledger, TOST at alpha {equivalence.ALPHA}):")
        print(tables.render_equivalence(equiv))
    if args.require_equivalence:
        problems += [f"{e['tier']} {e['config']} equivalence: {e['verdict']}" for e in equiv
                     if e["verdict"] != "equivalent"]
    if args.summary:
        with open(args.summary, "a") as f:
            f.write("## Gates\n\n" + tables.render_results(results, markdown=True) + "\n")
            if equiv:
                f.write("### Equivalence over retrains (seed ledger)\n\n" +
                        tables.render_equivalence(equiv, True) + "\n")
    mode = f"strict, required tiers {', '.join(required)}" if strict else "not strict"
    print(f"gate ({mode}): " + ("FAIL\n  " + "\n  ".join(problems) if problems else "pass"))
    return 1 if problems else 0


def _drift(args):
    """Current smoke metrics against the baseline (working tree or --rev); exit 1 past tolerance."""
    from repro.report import checks, drift, tables
    inputs = checks.load_inputs(args.metrics_dir, args.published, args.baseline, rev=args.rev)
    where = f"{inputs.baseline_path}@{args.rev}" if args.rev else inputs.baseline_path
    if inputs.baseline is None:
        print(f"repro drift: no baseline at {where}", file=sys.stderr)
        return 2
    rows = drift.drift_rows(inputs)
    seeds = {p: e.get("seeds") for p, e in inputs.baseline.get("precisions", {}).items()}
    print(f"old: {where} (mean over seeds {seeds}); new: {inputs.metrics_dir}/")
    print(tables.render(drift.COLUMNS, rows))
    bad = [r for r in rows if r[-1] != "ok"]
    print(f"drift: {len(bad)} of {len(rows)} metrics past tolerance or missing" if bad else "drift: none")
    return 1 if bad else 0


def smoke_runner(seed: int, amp: str) -> dict:
    """One seed's smoke run in a scratch directory, so the repo's data/, models/, reports/ stay as they are."""
    import tempfile

    from repro import smoke
    with tempfile.TemporaryDirectory(prefix="repro-baseline-") as scratch:
        return smoke.run_smoke(seed, workdir=Path(scratch) / f"{amp}-{seed}",
                               overrides={"profiles.smoke.train.amp": amp})


def _baseline(args):
    """Rerun the smoke pipeline per seed and precision and write the baseline with its spread."""
    from repro.report import rebaseline, tables
    precisions = args.precisions or rebaseline.default_precisions()
    path, rows = rebaseline.rebaseline(args.seeds, precisions, smoke_runner, args.out, args.published, args.ledger)
    print(tables.render(("precision", "config", "metric", "mean", "std", "range", "tolerance"), rows))
    print(f"wrote {path} ({', '.join(precisions)}, seeds {sorted(set(args.seeds))}); review the diff and commit it")
    return 0


def _plan(args):
    """Print the estimate table and write reports/plan/<profile>.json (or --check it)."""
    from repro import config
    from repro.report import plan
    if args.check:
        profile = args.profile or config.read_params(args.params)["profile"]
        path = Path(args.out_dir) / f"{profile}.json"
        if not path.is_file():
            raise SystemExit(f"repro plan --check: {path} does not exist (run `repro plan` first)")
        print(plan.render_cost(plan.cost_rows(path, Path("models"), Path("reports/metrics"))))
        return 0
    made, path = plan.run_plan(args.params, args.profile, args.out_dir, gpu=args.gpu, nproc=args.nproc,
                               steps=args.steps,
                               probe_batch=args.probe_batch,
                               **({"bandwidth_mb_s": args.bandwidth} if args.bandwidth else {}))
    print(f"{made['profile']} profile on {made['hardware']}, world size {made['world_size']}")
    print(plan.render(made))
    print(f"wrote {path}")
    return 0


def _diagnose(args):
    """Where the AP went between two prediction files; one line on bad input (exit 2)."""
    from repro.report import diagnose
    print(diagnose.write_report(diagnose.diagnose(args.gt, args.a, args.b), args.out))
    return 0


def _record(args):
    """Commit a full-profile run's dvc.lock, params, metrics and comparison under reports/records/full/."""
    from repro.report import record
    dest, commit = record.record(".", push=args.push, message=args.message)
    print(f"recorded {dest} in commit {commit[:12]}" + ("" if args.push else "; run `dvc push` to share its data"))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
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

    # Commands that parse their own arguments (DELEGATED): listed here so that `repro --help` names them all.
    for name, summary in DELEGATED_HELP.items():
        sub.add_parser(name, help=summary, add_help=False)
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
    p.add_argument("--ledger-dir", help="also append a trained model to this seed ledger (the stage's: outputs/ledger; the committed one: reports/ledger)")
    p.add_argument("--published-dir", default="models/published")
    command("download-published", _download_published, "fetch a published checkpoint", config=True) \
        .add_argument("--dest", default="models/published")
    p = command("compare", _compare, "compare metrics with the published table")
    for flag, default in (("--metrics-dir", "reports/metrics"), ("--models-dir", "models"),
                          ("--eval-dir", "outputs/eval"), ("--out-dir", "reports")):
        p.add_argument(flag, default=default)
    command("publish", _publish, "record in MLflow the runs kept in outputs/unpublished/ after a tracking failure")

    def gate_inputs(p):
        p.add_argument("--metrics-dir", default="reports/metrics")
        p.add_argument("--published", default=str(PUBLISHED_PATH))
        p.add_argument("--baseline", default=None, help="default: published.yaml tolerances.S.baseline")
        return p

    p = gate_inputs(command("gate", _gate, "the tolerance gates, every tier's checks; exit 1 on a failure"))
    p.add_argument("--strict", action="store_true", help="a required tier that did not run fails "
                                                         "(or REPRO_STRICT_GATES=1)")
    p.add_argument("--tier", nargs="+", help="the tiers to check (and require): A C S E (repro/report/tiers.py)")
    p.add_argument("--summary", help="append the markdown table here (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--require-equivalence", action="store_true",
                   help="also fail unless the seed ledger's mean AP is TOST-equivalent (tiers C, S)")
    p = gate_inputs(command("drift", _drift, "the smoke metrics against the committed baseline, like dvc "
                                             "metrics diff; exit 1 past tolerance"))
    p.add_argument("--rev", help="read the baseline at this git revision (git show REV:path)")
    p = command("diagnose", _diagnose, "where the AP went between two prediction files")
    p.add_argument("a", help="reference COCO keypoint results (e.g. the published checkpoint's)")
    p.add_argument("b", help="candidate COCO keypoint results (e.g. the retrain's)")
    p.add_argument("--gt", required=True, help="COCO person_keypoints annotation file")
    p.add_argument("--out", default="reports/diagnosis", help="where diagnosis.{md,json} and the plot go")
    p = command("record", _record, "commit a full-profile run's dvc.lock, metrics and comparison (reports/records/)")
    p.add_argument("--push", action="store_true", help="dvc push before committing")
    p.add_argument("-m", "--message", help="a paragraph for the commit message (where, on what, why)")
    p = command("plan", _plan, "estimated time and device-hours per stage, before a run (or --check after it)")
    p.add_argument("--gpu", help="a device of repro/throughput.yaml instead of probing this machine")
    p.add_argument("--nproc", type=int, help="with --gpu: GPUs per training run (default: train.gpus)")
    p.add_argument("--steps", type=int, help="timed training steps per config after a warm-up (default 5)")
    p.add_argument("--probe-batch", type=int, help="probe at this batch (scaled linearly to the configured one)")
    p.add_argument("--bandwidth", type=float, help="MB/s assumed for the COCO download (default 50)")
    p.add_argument("--out-dir", default="reports/plan")
    p.add_argument("--check", action="store_true", help="compare the written plan with the measured times")
    p = command("baseline", _baseline, "rerun the smoke pipeline per seed and write the baseline with its spread")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                   help="training precisions to measure (default: fp32, plus bf16 where this CPU has it "
                        "natively); entries of other precisions in the file are kept")
    p.add_argument("--out", default=None, help="default: published.yaml tolerances.S.baseline")
    p.add_argument("--published", default=str(PUBLISHED_PATH))
    p.add_argument("--ledger", default=None, help="seed ledger directory (default: reports/ledger)")
    return parser


def _main_of(module: str, func: str = "main"):
    """`repro <command> ARGV` -> `module.func(ARGV)`, the module imported only when the command runs."""
    def run(argv) -> int:
        import importlib
        return getattr(importlib.import_module(module), func)(argv)
    return run


# Commands that own their argument parsing: `repro train ...` is `python -m repro.engine.train ...`.
DELEGATED_HELP = {"train": "train one config (torchrun for several GPUs); repro train --help for its options",
                  "reference": "make tier E's committed smoke reference checkpoints"}
DELEGATED = {"train": _main_of("repro.engine.train", "run_train"), "reference": _main_of("repro.reference_build")}


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
