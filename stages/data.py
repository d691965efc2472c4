"""DVC stages `data_val` and `data_train`: one part of the data set of the selected profile, in data/<profile>.

val: val2017, the annotations and the person-detection boxes (all that evaluation reads, tier A included);
train: train2017. smoke: synthetic people generated from a seed (no network). full: COCO 2017 and the AP_H_56
detection file, downloaded and verified (REPRO_MIRROR: a local mirror; REPRO_DET_FILE: path or URL of the
detection file). The step is repro.data.prepare.run_data (also `repro data --part`).

    python -m stages.data --part val
    python -m stages.data --part train
"""
import argparse
import sys

from repro import config, errors
from repro.data import prepare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--part", required=True, choices=sorted(prepare.PARTS))
    args = parser.parse_args(argv)
    prepare.run_data(config.load(args.params), args.part)


if __name__ == "__main__":
    sys.exit(errors.run_main(main, prog="stages.data"))
