"""How a trained model does from a zero state: collapsed fresh starts, streamed and fresh-window validation bpc.

    python scripts/fresh_starts.py checkpoints/RUN [RUN ...] [--starts 128] [--length 200] [--json]

A fresh start is ``--length`` characters of the run's validation text, evenly
spaced over it, scored from a zero state (as every ``generate`` without a long
prompt, the exported page and each validation stream begin).  It counts as
collapsed above ``--threshold`` bpc (6: a model that has learnt anything scores
English text near 2; a collapsed one, whose state fell into an attractor like
``$jjj$$j…``, scored 16-17).  Beside the count: the streamed validation bpc the
run reports, and the fresh-window bpc of ``rnnlm eval --window 64``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rnnlm  # noqa: E402
from rnnlm.data.splits import encode_splits  # noqa: E402
from rnnlm.evaluation.metrics import score_ids  # noqa: E402

COLLAPSED_BPC = 6.0


def start_bpc(module, ids: np.ndarray, starts: int, length: int, token_chars: np.ndarray | None) -> np.ndarray:
    """bpc of each of ``starts`` evenly spaced pieces of ``ids`` (``length`` predictions each), each scored as
    ``rnnlm score`` scores a text: one stream from a zero state, its first id context."""
    offsets = np.linspace(0, len(ids) - length - 1, starts).round().astype(int)
    return np.array([score_ids(module, ids[o : o + length + 1], token_chars=token_chars)[0].bpc for o in offsets])


def measure(run: str, starts: int, length: int, threshold: float) -> dict:
    lm = rnnlm.load(run, device="cpu")
    paths = [Path(p) for p in lm.meta["corpus"]["paths"]]
    _, splits, _ = encode_splits(paths, lm.train_config, lm.tokenizer, None)
    bpc = start_bpc(lm.module, splits[1], starts, length, lm.tokenizer.char_lengths())
    return {"run": run, "collapsed": int((bpc > threshold).sum()), "starts": starts, "length": length,
            "threshold": threshold, "median_start_bpc": round(float(np.median(bpc)), 4),
            "worst_start_bpc": round(float(bpc.max()), 4),
            "streamed_bpc": round(lm.evaluate_split().bpc, 4), "window64_bpc": round(lm.evaluate_split(window=64).bpc, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories or .safetensors files")
    parser.add_argument("--starts", type=int, default=128)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=COLLAPSED_BPC, help="bpc above which a start collapsed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for run in args.runs:
        r = measure(run, args.starts, args.length, args.threshold)
        print(json.dumps(r) if args.json else
              f"{run}: {r['collapsed']} of {r['starts']} fresh {r['length']}-character starts collapsed "
              f"(>{r['threshold']:g} bpc; median {r['median_start_bpc']:.3f}, worst {r['worst_start_bpc']:.3f}); "
              f"streamed val bpc {r['streamed_bpc']:.4f}, --window 64 {r['window64_bpc']:.4f}", flush=True)


if __name__ == "__main__":
    main()
