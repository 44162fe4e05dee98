#!/usr/bin/env bash
# Build a wheel from the tree, install it into a fresh venv outside the repository, and run the commands whose
# package data an editable install would hide when missing: train with --size auto (reads
# rnnlm/training/sizes.json), generate, inspect and export (rnnlm/generation/web/*.html|js and
# rnnlm/model/cells/*.js).  Run by .ci/run.
#   bash scripts/wheel_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/dist" . >/dev/null
python3 -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" "${RNNLM_TORCH:-torch==2.13.0}"  # torch first: the project's range alone would bring the CUDA build
ls "$WORK"/dist/rnnlm_toolkit-*.whl >/dev/null  # the distribution's name (pyproject.toml says why)
"${PIP[@]}" "$WORK"/dist/*.whl
"$WORK/venv/bin/python" -m pip show -q rnnlm-toolkit >/dev/null
cd "$WORK"  # outside the repository: only the installed wheel can be imported
RNNLM="$WORK/venv/bin/rnnlm"
"$WORK/venv/bin/python" -c "import rnnlm, sys; sys.exit(0 if rnnlm.__file__.startswith('$WORK/venv') else 1)"
python3 - > corpus.txt <<'PY'
import random
random.seed(0)
words = "the king and queen of rome shall speak to thee my lord what is this night".split()
for i in range(600):
    print(f"{random.choice(['ROMEO', 'JULIET', 'NURSE']).upper()}:")
    print(" ".join(random.choice(words) for _ in range(random.randint(4, 12))).capitalize() + ".\n")
PY
"$RNNLM" train corpus.txt --max-steps 400 --bptt 16 --batch-size 4 --dry-run > dry.txt
grep -q "auto" dry.txt  # --size auto read sizes.json from the wheel
"$RNNLM" train corpus.txt --size 32x1 --max-steps 20 --bptt 16 --batch-size 4 --precision fp32 --out run 2> train.log
"$RNNLM" generate run --prompt "ROMEO:" --length 40 --seed 0 > sample.txt
grep -q "^ROMEO:" sample.txt
"$RNNLM" inspect run --out inspect.html --length 300 --max-k 16 2> inspect.log >/dev/null
"$RNNLM" export run --out page.html > export.txt
grep -q 'name="generator" content="rnnlm"' inspect.html page.html
grep -q "WebAssembly" page.html  # the engine came from the wheel's package data
grep -q "function cellStep" page.html  # and the cell's step (rnnlm/model/cells/<cell>.js)
echo "wheel check: built, installed outside the tree, train (--size auto dry run and a real run), generate, inspect and export work"
