"""Loss in nats, perplexity and bits per character, comparable across tokenizers.

bpc = total nats ÷ characters of the evaluated text ÷ ln 2 (CONVENTIONS.md), so a
subword model and a character model are ranked on the same scale; perplexity is
per token.  The text is cut into ``streams`` contiguous segments evaluated side
by side, each carrying its hidden state from its own start — the streamed
figure, batched so it costs one pass of the model rather than a batch-1 crawl.
``window`` instead scores fresh-state windows, as nanoGPT's evaluation does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .device import autocast_context
from .errors import InputError
from .model import RNNLM


@dataclass(frozen=True)
class EvalResult:
    nats: float
    tokens: int
    chars: int

    @property
    def nats_per_token(self) -> float:
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.nats_per_token, 700.0))

    @property
    def bpc(self) -> float:
        return self.nats / self.chars / math.log(2)

    @property
    def nats_per_char(self) -> float:
        return self.nats / self.chars

    def to_dict(self) -> dict:
        return asdict(self) | {
            "nats_per_token": self.nats_per_token,
            "nats_per_char": self.nats_per_char,
            "perplexity": self.perplexity,
            "bpc": self.bpc,
        }


def _score(model: RNNLM, rows: torch.Tensor, state, chunk: int, autocast_dtype) -> tuple[torch.Tensor, tuple]:
    """Summed nats of predicting ``rows[:, 1:]`` from ``rows[:, :-1]`` (S, L+1), carrying ``state``."""
    nats = torch.zeros((), dtype=torch.float64, device=rows.device)
    seg_len = rows.shape[1] - 1
    for t0 in range(0, seg_len, chunk):
        t1 = min(t0 + chunk, seg_len)
        with autocast_context(rows.device, autocast_dtype):
            logits, state = model(rows[:, t0:t1], state)  # (S, t, V)
        targets = rows[:, t0 + 1 : t1 + 1]  # (S, t)
        nats += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum").double()
    return nats, state


@torch.inference_mode()
def evaluate_ids(
    model: RNNLM,
    ids: np.ndarray,
    *,
    token_chars: np.ndarray | None = None,
    streams: int = 32,
    chunk: int = 256,
    window: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> EvalResult:
    """Score every id of ``ids`` (1-D) but the first, which has no context.

    Streamed: ``streams`` equal segments side by side, each carrying its state
    from its own start; the few ids left over continue the last segment.
    ``window``: fresh-state windows of that many ids (the last may be shorter).
    ``token_chars[i]`` is how many characters id ``i`` spells; ``None`` means one
    per token, so the denominator is the characters of all predicted ids.
    """
    if len(ids) < 2:
        raise InputError(f"evaluation text too short: {len(ids)} tokens (need at least 2)")
    if window is not None and window <= 0:
        raise InputError(f"--window must be positive, got {window}")
    device = next(model.parameters()).device
    all_ids = torch.from_numpy(np.asarray(ids).astype(np.int64)).to(device)  # (N,)
    n = len(all_ids) - 1
    if window is not None:
        streams, seg_len = max(1, n // window), min(window, n)
    else:
        streams = max(1, min(streams, n // 2))
        seg_len = n // streams
    starts = torch.arange(streams, device=device) * seg_len
    grid = all_ids[starts[:, None] + torch.arange(seg_len + 1, device=device)[None, :]]  # (S, L+1)
    was_training = model.training
    model.eval()
    try:
        nats = torch.zeros((), dtype=torch.float64, device=device)
        batch = 512 if window is not None else streams
        for b0 in range(0, streams, batch):
            rows = grid[b0 : b0 + batch]
            part, state = _score(model, rows, model.init_state(rows.shape[0], device), chunk if window is None else window, autocast_dtype)
            nats += part
        tail = all_ids[streams * seg_len :].unsqueeze(0)  # (1, r+1)
        if tail.shape[1] > 1:
            carried = model.init_state(1, device) if window is not None else tuple(s[:, -1:].contiguous() for s in state)
            part, _ = _score(model, tail, carried, chunk, autocast_dtype)
            nats += part
    finally:
        model.train(was_training)
    targets = all_ids[1:].cpu().numpy()
    chars = int(len(targets) if token_chars is None else token_chars[targets].sum())
    return EvalResult(nats=float(nats), tokens=int(len(targets)), chars=max(chars, 1))
