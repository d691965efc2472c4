"""The data steps: data/<profile>, the COCO-layout data set of the selected profile, in two parts.

    python -m stages.data --part val      # DVC stage data_val: val2017, annotations, detection boxes
    python -m stages.data --part train    # DVC stage data_train: train2017 (only stages that train need it)
    repro data [--part val|train|all] [--det-file FILE]   # the same from the command line

Evaluation (tier A above all) reads only the val part, so it never waits for train2017's 19 GB.
smoke: synthetic people generated from a seed (no network). full: COCO 2017 and the AP_H_56 detection file,
downloaded and verified (REPRO_MIRROR: a local mirror; REPRO_DET_FILE or det_file: path or URL of the
detection file). Both parts are DVC outs with `persist: true`, so a rerun of a data stage finds what is there:
downloads and extracted trees are re-verified and kept, never deleted (the synthetic parts are regenerated).
"""
from repro import config

# The subdirectories of data/<profile> each part writes (dvc.yaml's outs of data_val and data_train).
PARTS = {"val": ("val2017", "annotations", "person_detection_results"), "train": ("train2017",)}
# The COCO zips behind each part (the detection file comes with the val part).
COCO_ZIPS = {"val": ("val2017", "annotations"), "train": ("train2017",)}


def run_data(cfg, part: str = "all", det_file=None):
    """Write `part` ("val", "train" or "all") of cfg.data.root: synthesized (data.source synthetic) or
    downloaded and verified (coco).

    Args:
        cfg: the run configuration (config.load); data, synthetic are used.
        part: a key of PARTS, or "all" for both.
        det_file: path or URL of the detection file (default: $REPRO_DET_FILE, else its published URL).

    Returns:
        The synthetic generator's summary, or what prepare_coco returns (the COCO root).
    """
    parts = tuple(PARTS) if part == "all" else (part,)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise config.ConfigError(f"data part {part!r} is not one of {sorted(PARTS)} or 'all'")
    if cfg.data.source == "synthetic":
        from repro.data.synthetic import generate
        return generate(cfg.synthetic, cfg.data.root, parts=[d for p in parts for d in PARTS[p]])
    from repro.data.download import prepare_coco
    return prepare_coco(cfg.data.root, config.published()["sources"], mirror=config.mirror(),
                        det_file=det_file or config.det_file(), parts=[z for p in parts for z in COCO_ZIPS[p]],
                        detections="val" in parts)
