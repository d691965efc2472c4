"""Tier E's committed smoke reference (reports/reference): where it is, how it is evaluated, data digests.

The files are made by `repro reference` (repro/reference_build.py); the DVC stage evaluate_reference and
tier E (repro/report/tiers.py) reads them. The evaluation is the smoke profile's in fp32 (eval.amp none), so the
golden predictions compare on any CPU.
"""
import dataclasses
import hashlib
import json
from pathlib import Path

from repro import config
from repro.digest import sha256_file
from repro.errors import InputFileError

REFERENCE_DIR = Path("reports/reference")
INDEX = REFERENCE_DIR / "smoke.json"
PROFILE = "smoke"


def data_digests(data: config.DataConfig) -> dict:
    """sha256 of the val annotations, of the val images (sorted names + bytes, one digest) and of the det file."""
    images = hashlib.sha256()
    for path in sorted(Path(data.val_images).iterdir()):
        images.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"val_annotations": sha256_file(data.val_ann), "val_images": images.hexdigest(),
            "det_file": sha256_file(data.det_file)}


def eval_config(params, name: str, data_root, overrides=None, base=None) -> config.RunConfig:
    """The smoke config `name` (or `base`, already resolved) with its data at `data_root`, evaluated in
    fp32 (eval.amp none), as the reference was."""
    cfg = base or config.load(params, name, profile=PROFILE)
    data = config.DataConfig(cfg.data.source, str(data_root))
    eval_cfg = dataclasses.replace(cfg.eval, amp="none", **(overrides or {}))
    return dataclasses.replace(cfg, data=data, eval=eval_cfg)


def load_index(path=INDEX) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def evaluate_entry(cfg: config.RunConfig, entry: dict, out_dir) -> dict:
    """Evaluate a committed reference checkpoint (its sha256 checked first); the metrics dict."""
    from repro.evaluation import evaluate
    got = sha256_file(entry["checkpoint"])
    if got != entry["sha256"]:
        raise InputFileError(f"{entry['checkpoint']}: sha256 {got} is not the committed {entry['sha256']}")
    return evaluate.evaluate_checkpoint(cfg, Path(entry["checkpoint"]), Path(out_dir))


def evaluate_record(cfg: config.RunConfig, entry: dict, out_dir) -> dict:
    """Tier E's metrics record: `evaluate_entry`'s metrics (source "reference") plus the predictions path
    and the digests of the val data evaluated (cfg.data)."""
    from repro import checkpoint
    from repro.evaluation import results
    metrics = evaluate_entry(cfg, entry, out_dir)
    record = results.metrics_record(cfg, metrics, "reference", entry["checkpoint"],
                                    checkpoint.training_facts(entry["checkpoint"]))
    return {**record, "predictions": str(Path(out_dir) / "predictions.json"), "data": data_digests(cfg.data)}
