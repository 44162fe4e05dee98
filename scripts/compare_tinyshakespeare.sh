#!/usr/bin/env bash
# The README's comparisons on ../shared/corpora/tinyshakespeare.txt (90/5/5 split), each re-runnable:
# a finished configuration is skipped, so an interrupted run continues where it stopped.
#   cells:      SimpleRNN / LSTM / GRU × 1–2 layers at ~1M parameters, 5 minutes each (~35 min)
#   tokenizers: a 1-layer LSTM on characters vs sentencepiece BPE / unigram (1,000 pieces) at equal size (~17 min)
# Usage: bash scripts/compare_tinyshakespeare.sh [cells|tokenizers|all]
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=../shared/corpora/tinyshakespeare.txt
RNNLM=${RNNLM:-.venv/bin/rnnlm}  # may be a command with arguments, e.g. "python -m rnnlm"
[ -f "$CORPUS" ] || { echo "needs $CORPUS" >&2; exit 2; }
what=${1:-all}
if [ "$what" = cells ] || [ "$what" = all ]; then
    $RNNLM compare "$CORPUS" --cells rnn,lstm,gru --layers 1,2 --match params --params 1000000 --budget 5m \
        --out checkpoints/compare-cells
fi
if [ "$what" = tokenizers ] || [ "$what" = all ]; then
    $RNNLM compare "$CORPUS" --cells lstm --layers 1 --tokenizers char,bpe,unigram --vocab-size 1000 \
        --match params --params 1220000 --budget 5m --out checkpoints/compare-tokenizers
fi
