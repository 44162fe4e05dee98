#!/usr/bin/env bash
# Create .venv (if missing) and install rnnlm into it, torch FIRST: the project's torch>=2.10 range with no torch
# installed makes pip choose the index's default build, which on Linux from the standard index is the CUDA build
# (GBs of CUDA packages).  This machine's and CI's index serves a CPU wheel for the pin below.
#   RNNLM_TORCH       the torch requirement to install            [default: torch==2.13.0]
#   RNNLM_TORCH_ARGS  extra pip arguments for that install only, e.g. --index-url pointing at PyTorch's CPU
#                     wheel index on a machine whose default index would bring the CUDA build
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC2086  # RNNLM_TORCH_ARGS is a list of arguments
.venv/bin/python -m pip install -q --disable-pip-version-check ${RNNLM_TORCH_ARGS:-} "${RNNLM_TORCH:-torch==2.13.0}"
# The distribution was named "rnnlm" before it became rnnlm-toolkit (that name on the index is another project):
# an older .venv holds it, and its files would shadow this install's.
.venv/bin/python -m pip uninstall -q -y rnnlm >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,docs]"
