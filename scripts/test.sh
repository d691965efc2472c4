#!/usr/bin/env bash
# The test suite: unit tests, gates and the marked slow end-to-end tests (smoke pipeline, torchrun,
# resume, mlflow ui in a headless browser). Extra arguments go to pytest (e.g. -m 'not slow').
source "$(dirname "$0")/env.sh"
# The MLflow UI test drives Debian's headless Chromium; install it where we can (root with apt-get).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium: the MLflow UI browser test will skip" >&2
fi
exec python -m pytest -m "not gpu and not coco" "$@"
