"""The data step: data/<profile>, the COCO-layout data set of the selected profile.

    python -m stages.data                 # the DVC stage
    repro data [--det-file FILE]          # the same step from the command line

smoke: synthetic people generated from a seed (no network). full: COCO 2017 and the AP_H_56 detection file,
downloaded and verified (REPRO_MIRROR: a local mirror; REPRO_DET_FILE or det_file: path or URL of the
detection file).
"""
from repro import config


def run_data(cfg, det_file=None):
    """Write cfg.data.root: synthesized (data.source synthetic) or downloaded and verified (coco).

    Args:
        cfg: the run configuration (config.load); data, synthetic are used.
        det_file: path or URL of the detection file (default: $REPRO_DET_FILE, else its published URL).

    Returns:
        The synthetic generator's summary, or what prepare_coco returns (the COCO root).
    """
    if cfg.data.source == "synthetic":
        from repro.data.synthetic import generate
        return generate(cfg.synthetic, cfg.data.root)
    from repro.data.download import prepare_coco
    return prepare_coco(cfg.data.root, config.published()["sources"], mirror=config.mirror(),
                        det_file=det_file or config.det_file())
