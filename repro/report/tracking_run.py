"""The compare step's MLflow run, and the pipeline's parent run it closes.

Names (the README's "MLflow metric names"): a measured value is `<record>/<metric>`, the record being the
metrics file it comes from (`256x192/AP` for the trained model, `published_256x192/AP` for the published
checkpoint), logged once however many tiers read it; a tier's delta is `<tier>/<config>/<metric>/delta`.
The parent run carries each config's trained AP, AP50, AP75, AR under the same `<config>/<stat>` names.
"""
import json

from repro import records, tracking
from repro.report import tiers


def comparison_metrics(summary: dict) -> dict:
    """The compare run's metrics: each measured value under its record's name, each delta under its tier's."""
    metrics = {}
    for tier, by_config in summary["results"].items():
        for name, rows in by_config.items():
            record = records.tag(name, tiers.row_of(tier).source)   # 256x192, published_256x192, ...
            for metric, row in rows.items():
                if row["measured"] is not None:
                    metrics[f"{record}/{metric}"] = row["measured"]
                if row["delta"] is not None:
                    metrics[f"{tier}/{name}/{metric}/delta"] = row["delta"]
    return metrics


def pipeline_metrics(summary: dict) -> dict:
    """What the parent run shows on its row: each config's trained AP, AP50, AP75, AR (`<config>/<stat>`)."""
    configs = {name for by_config in summary["results"].values() for name in by_config}
    wanted = {f"{name}/{stat}" for name in configs for stat in tracking.VIEW_STATS}
    return {k: v for k, v in comparison_metrics(summary).items() if k in wanted}


def log_comparison(cfg, summary: dict, report_path, artifacts=(), also=None) -> str | None:
    """The comparison as an MLflow run: overall and per-tier verdicts as tags, `comparison_metrics` as
    metrics, the markdown report as an artifact, each (file, artifact directory) of `artifacts` (the
    diagnosis plots); `also`, if given, is called with the run's Tracker before it ends (the caller's own
    metrics and artifacts)."""
    tags = {"repro.pipeline": tracking.pipeline_group_id(), "repro.profile": cfg.profile, "repro.stage": "compare",
            "repro.verdict": summary["verdict"],
            **{f"repro.verdict.{tier}.{name}": entry["verdict"]
               for tier, by_config in summary["tiers"].items() for name, entry in by_config.items()},
            "git.commit": tracking.git_commit()}
    return tracking.publish({"kind": "compare", "name": f"compare-{cfg.profile}", "tags": tags,
                             "params": {"required_tiers": ",".join(summary["required_tiers"])},
                             "metrics": comparison_metrics(summary),
                             "texts": {"comparison.json": json.dumps(summary, indent=2) + "\n"},
                             "files": [[str(report_path), None], *([str(p), d] for p, d in artifacts)]}, also)


def close_pipeline(summary: dict) -> None:
    """Close this pipeline's parent run with the overall verdict and `pipeline_metrics`."""
    tracking.close_pipeline(summary["verdict"], pipeline_metrics(summary))
