#!/usr/bin/env bash
# The main job on a fresh machine: install, build the default corpus, train a small model, generate.
# MAX_TIME=10m bash scripts/demo.sh trains longer (default 3m).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/rnnlm corpus
.venv/bin/rnnlm train corpora/shakespeare.txt --max-time "${MAX_TIME:-3m}" --out checkpoints/demo
.venv/bin/rnnlm generate checkpoints/demo --prompt "ROMEO:" --length 600 --seed 0
