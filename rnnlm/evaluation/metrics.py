"""Loss in nats, perplexity and bits per character, comparable across tokenizers.

bpc = total nats ÷ characters of the evaluated text ÷ ln 2 (docs/developer/rules.md), so a
subword model and a character model are ranked on the same scale; perplexity is
per token.  The text is cut into ``streams`` contiguous segments evaluated side
by side, each carrying its hidden state from its own start — the streamed
figure, batched so it costs one pass of the model rather than a batch-1 crawl.
``window`` instead scores fresh-state windows, as nanoGPT's evaluation does.
Validation during training scores a fixed sample of the split (``data.val_scope``):
the same rows, from fresh states, through :func:`evaluate_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.core.device import autocast_context, model_device
from rnnlm.core.errors import InputError
from rnnlm.model.network import RNNLM


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


# Logits held at once during evaluation, in elements (16 MB of float32): rows × chunk × vocabulary stays under
# it, so a 6,000-character or 32k-piece vocabulary is scored in bounded memory (in smaller chunks).
LOGITS_BUDGET = 1 << 22
MAX_ROWS = 512


def _rows_of(ids: np.ndarray, streams: int | None, window: int | None) -> list[np.ndarray]:
    """Cut ``ids`` into rows scored from a fresh state, each predicting its ids after the first.

    Consecutive rows overlap by one id (a row's last target is the next row's
    first input), so every id but the very first is predicted exactly once.
    ``streams``: that many equal contiguous segments; ``window``: rows of
    ``window`` predictions each (nanoGPT's fresh-state windows).
    """
    n = len(ids) - 1
    if window is not None:
        bounds = list(range(0, n, window)) + [n]
    else:
        count = max(1, min(streams, n // 2))
        bounds = [round(i * n / count) for i in range(count + 1)]
    return [ids[a : b + 1] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


# no_grad, not inference_mode: with torch 2.13's CPU build (AMD EPYC, oneDNN) a 1×512 LSTM over 32 × 43
# characters took 1,083 ms under inference_mode and 132 ms under no_grad, a bf16 decoder 418 ms against 95 ms;
# validating tinyshakespeare's 55k characters went from 15.0 s to 7.4 s (same nats to the last digit).
@torch.no_grad()
def evaluate_rows(
    model: RNNLM,
    rows: list[np.ndarray],
    *,
    token_chars: np.ndarray | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Summed nats of predicting each row's ids after its first, every row from a fresh state.

    Rows are batched (shorter ones padded, their padding ignored) and walked in
    time chunks carrying the state, with rows × chunk × vocabulary capped by
    ``LOGITS_BUDGET``.  ``progress(done, total)`` counts predicted ids.
    """
    rows = [np.asarray(r) for r in rows if len(r) >= 2]
    if not rows:
        raise InputError("evaluation text too short (need at least 2 tokens)")
    device = model_device(model)
    vocab = model.config.vocab_size
    batch = max(1, min(MAX_ROWS, len(rows), LOGITS_BUDGET // (vocab * 32)))
    total = sum(len(r) - 1 for r in rows)
    nats = torch.zeros((), dtype=torch.float64, device=device)
    done = 0
    was_training = model.training
    model.eval()
    try:
        for b0 in range(0, len(rows), batch):
            group = rows[b0 : b0 + batch]
            width = max(len(r) for r in group)
            grid = np.zeros((len(group), width), dtype=np.int64)  # (S, L+1)
            targets = np.full((len(group), width), -100, dtype=np.int64)  # -100: padding, ignored
            for i, r in enumerate(group):
                grid[i, : len(r)] = r
                targets[i, : len(r) - 1] = r[1:]
            x = torch.from_numpy(grid).to(device)
            y = torch.from_numpy(targets).to(device)
            chunk = max(1, min(256, LOGITS_BUDGET // (len(group) * vocab)))
            state = model.init_state(len(group), device)
            for t0 in range(0, width - 1, chunk):
                t1 = min(t0 + chunk, width - 1)
                with autocast_context(device, autocast_dtype):
                    logits, state = model(x[:, t0:t1], state)  # (S, t, V)
                nats += F.cross_entropy(logits.float().reshape(-1, vocab), y[:, t0:t1].reshape(-1),
                                        reduction="sum", ignore_index=-100).double()
                if progress is not None:
                    done += int(np.count_nonzero(targets[:, t0:t1] != -100))
                    progress(done, total)

    finally:
        model.train(was_training)
    targets_all = np.concatenate([r[1:] for r in rows])
    chars = int(len(targets_all) if token_chars is None else token_chars[targets_all].sum())
    return EvalResult(nats=float(nats), tokens=int(len(targets_all)), chars=max(chars, 1))


def evaluate_ids(
    model: RNNLM,
    ids: np.ndarray,
    *,
    token_chars: np.ndarray | None = None,
    streams: int = 32,
    window: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Score every id of ``ids`` (1-D) but the first, which has no context.

    Streamed: ``streams`` equal segments side by side, each carrying its state
    from its own start.  ``window``: fresh-state windows of that many ids.
    ``token_chars[i]`` is how many characters id ``i`` spells; ``None`` means one
    per token, so the denominator is the characters of all predicted ids.
    """
    if len(ids) < 2:
        raise InputError(f"evaluation text too short: {len(ids)} tokens (need at least 2)")
    if window is not None and window <= 0:
        raise InputError(f"--window must be positive, got {window}")
    rows = _rows_of(np.asarray(ids), streams, window)
    return evaluate_rows(model, rows, token_chars=token_chars, autocast_dtype=autocast_dtype, progress=progress)


def evaluate_scope(
    model: RNNLM,
    ids: np.ndarray,
    segments: list[np.ndarray] | None,
    *,
    token_chars: np.ndarray | None = None,
    streams: int = 32,
    window: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Score a validation scope: ``segments`` (a fixed sample, see ``data.val_scope``), or all of ``ids`` when None.

    Each sampled segment starts from a fresh state, like each stream of the
    whole-text figure; with ``window`` every segment is cut into windows.
    """
    if segments is None:
        return evaluate_ids(model, ids, token_chars=token_chars, streams=streams, window=window, progress=progress)
    rows = segments if window is None else [row for seg in segments for row in _rows_of(seg, None, window)]
    return evaluate_rows(model, rows, token_chars=token_chars, progress=progress)
