#!/usr/bin/env bash
# Create .venv (if missing) and install rnnlm into it. torch is pinned to the CPU wheel FIRST:
# an unpinned torch (or the project's torch>=2.10 range with no torch installed) pulls GBs of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
