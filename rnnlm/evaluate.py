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
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

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


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision for the forward pass, or nothing for fp32."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


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
    """Score ``ids`` (1-D): every id but the first of each segment is predicted.

    ``token_chars[i]`` is how many characters id ``i`` spells (all ones for the
    char tokenizer); ``None`` means one per token.
    """
    if len(ids) < 2:
        raise InputError(f"evaluation text too short: {len(ids)} tokens (need at least 2)")
    device = next(model.parameters()).device
    if window is not None:
        if window <= 0:
            raise InputError(f"--window must be positive, got {window}")
        n = (len(ids) - 1) // window
        streams, seg_len, chunk = max(n, 1), (window if n else len(ids) - 1), window
    else:
        streams = max(1, min(streams, (len(ids) - 1) // 2))
        seg_len = (len(ids) - 1) // streams
    starts = np.arange(streams, dtype=np.int64) * seg_len
    cols = np.arange(seg_len + 1, dtype=np.int64)
    grid = torch.from_numpy(np.asarray(ids)[starts[:, None] + cols[None, :]].astype(np.int64))  # (S, L+1)
    grid = grid.to(device)
    was_training = model.training
    model.eval()
    nats = torch.zeros((), dtype=torch.float64, device=device)
    batch = 512 if window is not None else streams
    try:
        for b0 in range(0, streams, batch):
            rows = grid[b0 : b0 + batch]
            state = model.init_state(rows.shape[0], device)
            for t0 in range(0, seg_len, chunk):
                t1 = min(t0 + chunk, seg_len)
                x = rows[:, t0:t1]  # (S, t)
                y = rows[:, t0 + 1 : t1 + 1]  # (S, t)
                with autocast_context(device, autocast_dtype):
                    logits, state = model(x, state)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
                nats += loss.double()
    finally:
        model.train(was_training)
    targets = grid[:, 1:].reshape(-1).cpu().numpy()
    chars = int(len(targets) if token_chars is None else token_chars[targets].sum())
    return EvalResult(nats=float(nats), tokens=int(len(targets)), chars=max(chars, 1))
