# Sourced by scripts/repro.sh and scripts/test.sh: make .venv with the pinned dependencies, once.
# Re-installs only when constraints.txt or pyproject.toml change (a stamp holds their digest).
# The installer is uv (about a minute with a warm package cache; bootstrapped from PyPI into
# ~/.cache/repro-tools when missing) and pip where uv cannot be had (REPRO_INSTALLER=pip forces it);
# both install exactly the versions pinned in constraints.txt (tests/unit/test_pinned_versions.py checks).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DVC_NO_ANALYTICS=1
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
UV_VERSION=0.13.9
stamp=.venv/.repro-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)

# uv on PATH, else the one bootstrapped here before, else bootstrap it (prints nothing if that fails).
find_uv() {
  local tools=${REPRO_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/repro-tools}
  if command -v uv >/dev/null; then command -v uv; return; fi
  if [ ! -x "$tools/bin/uv" ]; then
    { "$PYTHON" -m venv "$tools" && "$tools/bin/python" -m pip install -q "uv==$UV_VERSION"; } >&2 \
      || { echo "could not install uv: installing with pip instead" >&2; return; }
  fi
  echo "$tools/bin/uv"
}

# uv reads no pip configuration: hand it pip's own (files and PIP_* variables) so both installers see the
# same wheels, e.g. a local CPU build of torch in find-links rather than PyPI's CUDA one.
uv_args_from_pip() {
  local config key value
  config=$("$PYTHON" -m pip config list 2>/dev/null || true)
  while IFS= read -r line; do
    key=${line%%=*}; key=${key#*.}; value=${line#*=}; value=${value#\'}; value=${value%\'}
    case $key in
      index-url) echo "--default-index=$value" ;;
      extra-index-url) for v in $value; do echo "--index=$v"; done ;;
      find-links) for v in $value; do echo "--find-links=$v"; done ;;
      constraint) for v in $value; do if [ -f "$v" ]; then echo "--constraint=$v"; fi; done ;;
    esac
  done <<< "$config" | sort -u
}

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (pinned by constraints.txt)" >&2
  uv=""
  [ "${REPRO_INSTALLER:-uv}" = pip ] || uv=$(find_uv)
  if [ -n "$uv" ]; then
    mapfile -t pip_args < <(uv_args_from_pip)
    [ -x .venv/bin/python ] || "$uv" venv -q --python "$PYTHON" .venv
    # unsafe-best-match: like pip, take the best matching version across all indexes (uv's default would
    # stop at the first index that has the package at all).
    # compile-bytecode: as pip does. uv leaves the .py files alone, and where PYTHONDONTWRITEBYTECODE is set
    # (containers, CI images) every process then recompiles torch, mlflow and dvc on import: 6 s for
    # `import mlflow` instead of 2.4, paid by every stage and every test subprocess (issue 26).
    "$uv" pip install -q --python .venv/bin/python --index-strategy unsafe-best-match "${pip_args[@]}" \
      --compile-bytecode -c constraints.txt -e '.[dev]'
  else
    # (a .venv made by uv has no pip: venv adds it to the existing environment)
    .venv/bin/python -m pip --version >/dev/null 2>&1 || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    # torch==2.13.0 is pinned: on a CUDA machine pip takes PyPI's CUDA build; on a CPU-only machine set
    # PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu to get the small CPU build.
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  fi
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
