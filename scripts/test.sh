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
# One pytest-xdist worker per core (at most 4), each test process on cores/workers threads: on 2 cores, two
# 1-thread processes train 1.2x faster than one 2-thread process (the steps are compute-bound), and the
# single-threaded parts (stage start-ups, DVC, MLflow, COCOeval) overlap. Tests that share an expensive
# fixture run on one worker (tests/conftest.py groups them). REPRO_TEST_WORKERS=1: one worker on all cores.
cores=$(nproc)
workers=${REPRO_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / workers > 1 ? cores / workers : 1 ))}
exec python -m pytest -n "$workers" --dist loadgroup -m "not gpu and not coco" "$@"
