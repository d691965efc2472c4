"""The evaluation records: how one evaluation is named, where its files are, and reading and writing them.

An evaluation is a (config, source) pair. Its tag names its metrics record and its evaluation directory:

    reports/metrics/<tag>.json          the metrics record (10 COCO stats, counts, what produced them)
    reports/stats/<tag>.json            what a person reads (`dvc metrics show`): the 10 stats and the verdict
                                        of the tier that checks this evaluation (written by compare)
    outputs/eval/<tag>/predictions.json the predictions (COCO results format), beside metrics.json

tag = <config> for source "trained", <source>_<config> for the others ("published_256x192",
"reference_256x192"). This module is the only place that rule is written; everything else asks it.
"""
import json
from pathlib import Path

from repro import atomic
from repro.errors import InputFileError

SOURCES = ("trained", "published", "reference")
METRICS_DIR = Path("reports/metrics")
EVAL_DIR = Path("outputs/eval")
STATS_DIR = Path("reports/stats")


def tag(config: str, source: str) -> str:
    """`256x192` (trained), `published_256x192`, `reference_256x192`."""
    if source not in SOURCES:
        raise ValueError(f"unknown evaluation source {source!r}; one of {', '.join(SOURCES)}")
    return config if source == "trained" else f"{source}_{config}"


def parse_tag(text: str) -> tuple[str, str]:
    """(config, source) of a tag; the inverse of `tag`."""
    source, sep, config = text.partition("_")
    return (config, source) if sep and source in SOURCES[1:] else (text, "trained")


def metrics_path(config: str, source: str, metrics_dir=METRICS_DIR) -> Path:
    return Path(metrics_dir) / f"{tag(config, source)}.json"


def stats_path(config: str, source: str, stats_dir=STATS_DIR) -> Path:
    return Path(stats_dir) / f"{tag(config, source)}.json"


def eval_dir(config: str, source: str, eval_root=EVAL_DIR) -> Path:
    return Path(eval_root) / tag(config, source)


def predictions_path(config: str, source: str, eval_root=EVAL_DIR) -> Path:
    return eval_dir(config, source, eval_root) / "predictions.json"


def configs_with(source: str, metrics_dir=METRICS_DIR) -> list[str]:
    """The configs that have a metrics record of `source` in metrics_dir, sorted."""
    tags = (parse_tag(p.stem) for p in Path(metrics_dir).glob("*.json"))
    return sorted(config for config, s in tags if s == source)


def write(path, record: dict) -> Path:
    """The record as JSON, written to a temporary name and renamed."""
    return atomic.write_json(path, record)


def read(path) -> dict | None:
    """A metrics record, or None when the file does not exist.

    Raises:
        InputFileError: the file is not a JSON object (damaged, truncated, hand-edited).
    """
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(f"{path}: damaged metrics file, not valid JSON ({e}); rerun the stage that "
                             f"writes it") from None
    if not isinstance(record, dict):
        raise InputFileError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record
