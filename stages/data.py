"""DVC stage `data`: the COCO-layout data set of the selected profile, written to data/<profile>.

smoke: synthetic people generated from a seed (no network). full: COCO 2017 and the AP_H_56 detection
file, downloaded and verified (REPRO_MIRROR: a local mirror; REPRO_DET_FILE: path or URL of the
detection file). The step is repro.data.prepare.run_data (also `repro data`).

    python -m stages.data
"""
import argparse
import sys

from repro import config, errors
from repro.data import prepare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    prepare.run_data(config.load(args.params))


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.data"))
