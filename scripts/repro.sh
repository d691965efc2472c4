#!/usr/bin/env bash
# The main job: `dvc repro` of the whole pipeline (default: the embedded smoke profile, CPU, minutes).
# Extra arguments go to `dvc repro` (e.g. scripts/repro.sh --dry, scripts/repro.sh compare).
source "$(dirname "$0")/env.sh"
[ -d .dvc ] || dvc init -q
dvc repro "$@"
echo "results: reports/comparison.md   runs: mlflow ui --workers 1 (at the repo root)" >&2
