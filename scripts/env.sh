# Sourced by scripts/repro.sh and scripts/test.sh: make .venv with the pinned dependencies, once.
# Re-installs only when constraints.txt or pyproject.toml change (a stamp holds their digest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DVC_NO_ANALYTICS=1
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.repro-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (pinned by constraints.txt; first time takes a few minutes)" >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  # torch==2.13.0 is pinned: on a CUDA machine pip takes PyPI's CUDA build; on a CPU-only machine set
  # PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu to get the small CPU build.
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
