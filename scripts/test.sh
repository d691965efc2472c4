#!/usr/bin/env bash
# The test suite: unit tests, gates and the marked slow end-to-end tests (smoke pipeline, torchrun,
# resume, mlflow ui in a headless browser). Extra arguments go to pytest (e.g. -m 'not slow').
source "$(dirname "$0")/env.sh"
# The MLflow UI test drives Debian's headless Chromium, the SLURM test a one-node slurm-wlm cluster it starts
# itself; install them where we can (root with apt-get).
wanted=()
command -v chromium >/dev/null || wanted+=(chromium)
command -v slurmctld >/dev/null || wanted+=(slurm-wlm)
if [ ${#wanted[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null) \
    || echo "could not install ${wanted[*]}: the MLflow UI browser test and the SLURM test will skip" >&2
fi
exec python -m pytest -m "not gpu and not coco" "$@"
