"""DVC stage `data`: the COCO-layout data set of the selected profile, written to data/<profile>.

smoke: synthetic people generated from a seed (no network). full: COCO 2017 and the AP_H_56 detection
file, downloaded and verified (REPRO_MIRROR: a local mirror; REPRO_DET_FILE: path or URL of the
detection file).

    python -m stages.data
"""
import argparse
import os
import sys

from repro import config, errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    cfg = config.load(args.params)
    if cfg.data.source == "synthetic":
        from repro.data.synthetic import generate
        generate(cfg.synthetic, cfg.data.root)
    else:
        from repro.data.download import prepare_coco
        prepare_coco(cfg.data.root, config.published()["sources"], mirror=os.environ.get("REPRO_MIRROR"),
                     det_file=os.environ.get("REPRO_DET_FILE"))


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.data"))
