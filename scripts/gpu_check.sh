#!/usr/bin/env bash
# The GPU check in one call per part: bash scripts/gpu_check.sh --part checks|quality [--dry-run]
# (see scripts/gpu_check.py; on the GPU machine nothing is installed: PYTHONPATH=. with its own torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
PYTHONPATH=. exec "$PY" scripts/gpu_check.py "$@"
