"""DVC stages `evaluate@<config>` and `evaluate_published@<config>`: the published evaluation protocol.

--source trained: our checkpoint (models/<config>/best.pth). --source published: the mmpose checkpoint of
this config, downloaded and sha256-verified into models/published/ (full profile only; in the smoke profile
there is none to evaluate and the metrics file says so). Writes outputs/eval/<tag>/{predictions,metrics}.json,
reports/metrics/<tag>.json (read by `compare`) and an MLflow run.

    python -m stages.evaluate --config 256x192 --source trained --checkpoint models/256x192/best.pth
    python -m stages.evaluate --config 256x192 --source published
"""
import argparse
import os
import sys
from pathlib import Path

from repro import atomic, checkpoint as ckpt_io, config, errors, evaluate, machine, results, tracking


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--config", required=True)
    parser.add_argument("--source", required=True, choices=["trained", "published"])
    parser.add_argument("--checkpoint", help="required with --source trained")
    args = parser.parse_args(argv)
    cfg = machine.resolve_precision(config.load(args.params, args.config))
    try:
        tracking.preflight()
    except tracking.TrackingError as e:
        raise SystemExit(f"stages.evaluate: error: {e}") from None
    tag = cfg.name if args.source == "trained" else f"published_{cfg.name}"
    out = Path("reports/metrics") / f"{tag}.json"
    atomic.check_writable(out.parent)   # before the download and the evaluation, not after them
    if args.source == "published" and cfg.data.source != "coco":
        reason = f"profile {cfg.profile!r} has no published checkpoint to evaluate (tier A needs profile full)"
        results.write(out, results.not_run_record(cfg, args.source, reason))
        return
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.source == "published":
        from repro.download import fetch_published
        checkpoint = fetch_published(config.published()["models"][cfg.name], Path("models/published"),
                                     mirror=os.environ.get("REPRO_MIRROR"))
    metrics = evaluate.evaluate_checkpoint(cfg, checkpoint, Path("outputs/eval") / tag)
    record = results.metrics_record(cfg, metrics, args.source, checkpoint, ckpt_io.trained_precision(checkpoint))
    results.write(out, record)   # first: a tracking failure must not cost the evaluation
    tracking.log_evaluation(f"evaluate_{tag}", cfg, record)


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.evaluate"))
