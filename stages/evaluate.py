"""DVC stages `evaluate@<config>` and `evaluate_published@<config>`: the published evaluation protocol.

--source trained: our checkpoint (models/<config>/best.pth). --source published: the mmpose checkpoint of
this config, downloaded and sha256-verified into models/published/ (full profile only; in the smoke profile
there is none to evaluate and the metrics file says so). Writes outputs/eval/<tag>/{predictions,metrics}.json,
reports/metrics/<tag>.json (read by `compare`) and an MLflow run (a published checkpoint also becomes the
registered MLflow model cpm-<config>-published); a trained model's metrics are also
appended to the seed ledger reports/ledger/<profile>_<config>.json (repro/report/ledger.py). --source reference: the committed
smoke reference checkpoint of reports/reference/smoke.json (tier E; smoke profile only), its record adding the
predictions path and the val data digests.

    python -m stages.evaluate --config 256x192 --source trained --checkpoint models/256x192/best.pth
    python -m stages.evaluate --config 256x192 --source published
    python -m stages.evaluate --config 256x192 --source reference
"""
import argparse
import os
import sys
import time
from pathlib import Path

from repro import atomic, checkpoint as ckpt_io, config, errors, machine, tracking
from repro.evaluation import evaluate, reference, results
from repro.report import ledger


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--config", required=True)
    parser.add_argument("--source", required=True, choices=["trained", "published", "reference"])
    parser.add_argument("--checkpoint", help="required with --source trained")
    args = parser.parse_args(argv)
    cfg = machine.resolve_precision(config.load(args.params, args.config))
    try:
        tracking.preflight()
    except tracking.TrackingError as e:
        raise SystemExit(f"stages.evaluate: error: {e}") from None
    tag = cfg.name if args.source == "trained" else f"{args.source}_{cfg.name}"
    out = Path("reports/metrics") / f"{tag}.json"
    atomic.check_writable(out.parent)   # before the download and the evaluation, not after them
    if args.source == "reference":
        record, cfg = evaluate_reference(cfg, Path("outputs/eval") / tag)
        results.write(out, record)   # first: a tracking failure must not cost the evaluation
        if record.get("status") != "not_run":
            tracking.log_evaluation(f"evaluate_{tag}", cfg, record)
        return
    if args.source == "published" and cfg.data.source != "coco":
        reason = f"profile {cfg.profile!r} has no published checkpoint to evaluate (tier A needs profile full)"
        results.write(out, results.not_run_record(cfg, args.source, reason))
        return
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.source == "published":
        from repro.data.download import fetch_published
        checkpoint = fetch_published(config.published()["models"][cfg.name], Path("models/published"),
                                     mirror=os.environ.get("REPRO_MIRROR"))
    start = time.perf_counter()
    metrics = evaluate.evaluate_checkpoint(cfg, checkpoint, Path("outputs/eval") / tag)
    record = {**results.metrics_record(cfg, metrics, args.source, checkpoint, ckpt_io.trained_precision(checkpoint)),
              "eval_wall_time_s": round(time.perf_counter() - start, 3)}   # beside `repro plan`'s estimate
    results.write(out, record)   # first: a tracking failure must not cost the evaluation
    # A published checkpoint is also registered as the MLflow model cpm-<config>-published (trained ones are
    # registered by their training run, as cpm-<config>).
    tracking.log_evaluation(f"evaluate_{tag}", cfg, record,
                            model_checkpoint=checkpoint if args.source == "published" else None)
    if args.source == "trained":   # one retrain more in the seed ledger (tier C / S equivalence)
        ledger.append(ledger.LEDGER_DIR, record, config.published()["metric_names"])


def evaluate_reference(cfg, out_dir: Path) -> tuple:
    """Tier E: (the record of cfg.name's committed reference evaluated here, its resolved config); a not_run
    record outside the smoke profile."""
    index = reference.load_index()
    if cfg.profile != reference.PROFILE or index is None or cfg.name not in index["configs"]:
        why = (f"profile {cfg.profile!r} has no smoke reference (tier E is the smoke profile's)"
               if cfg.profile != reference.PROFILE else f"{reference.INDEX} has no reference for {cfg.name}")
        return results.not_run_record(cfg, "reference", why), cfg
    cfg = reference.eval_config(None, cfg.name, cfg.data.root, base=cfg)
    return reference.evaluate_record(cfg, index["configs"][cfg.name], out_dir), cfg


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.evaluate"))
