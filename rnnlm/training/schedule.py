"""What the budget decides (learning-rate schedule, regularisation rates), the carried streams' restarts,
and the signal flag that lets a run stop cleanly."""

from __future__ import annotations

import math
import signal
from typing import Any

import torch


def effective_warmup(warmup: int, total: int | None) -> int:
    """Warmup steps, at most a fifth of a known total (a 50-step run must not spend them all warming up)."""
    return warmup if total is None else max(1, min(warmup, total // 5))


def cosine_progress(step: int, total: int | None, warmup: int, anchor: tuple[int, float] | None = None) -> float:
    """How far along the cosine ``step`` is, in [0, 1]; 0 during warmup and while ``total`` is unknown.

    ``anchor`` = (step, progress) where the total was last changed: from there
    the remaining progress is spread over the remaining steps, so a refit that
    moves the total never makes the learning rate jump (docs/developer/rules.md).
    """
    if total is None or step < warmup:
        return 0.0
    if anchor is None:
        return min(1.0, (step - warmup) / max(1, total - warmup))
    start, done = anchor
    return min(1.0, done + (1 - done) * (step - start) / max(1, total - start))


def lr_factor(step: int, total: int | None, warmup: int, min_ratio: float,
              anchor: tuple[int, float] | None = None) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total`` (flat while unknown)."""
    if step < warmup:
        return (step + 1) / warmup
    if total is None:
        return 1.0
    progress = cosine_progress(step, total, warmup, anchor)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# Dropout for a run that makes this many passes over its training text (see auto_dropout).
DROPOUT_AT_10_EPOCHS = 0.1
DROPOUT_PER_DOUBLING = 0.1
DROPOUT_MAX = 0.4


def auto_dropout(epochs: float) -> float:
    """The dropout rate for a run planned to make ``epochs`` passes over its training text.

    Overfitting grows with passes over the same text, not with time: on
    tinyshakespeare a 1×512 LSTM at 10 passes (3 minutes here) did best with
    0.1 (0.0: 2.043, 0.1: 1.960, 0.2: 1.974, 0.3: 1.994 bpc), and the same 0.1
    over 56 passes (15 minutes) ended worse than the 3-minute run.  So the
    rate rises by ``DROPOUT_PER_DOUBLING`` per doubling of the passes above
    10 and falls by half that per halving below, to none at 2.5 passes (a
    corpus too big to see twice needs none), capped at ``DROPOUT_MAX``.
    """
    octaves = math.log2(max(epochs, 1e-9) / 10)
    slope = DROPOUT_PER_DOUBLING if octaves > 0 else DROPOUT_PER_DOUBLING / 2
    return round(min(DROPOUT_MAX, max(0.0, DROPOUT_AT_10_EPOCHS + slope * octaves)), 3)


def fixed_steps(max_steps: int | None, epochs: float | None, windows_per_epoch: int) -> int | None:
    """The step count a step or epoch budget gives up front (the smaller of the two), or None without either."""
    totals = [max_steps] if max_steps is not None else []
    if epochs is not None:
        totals.append(max(1, math.ceil(epochs * windows_per_epoch)))
    return min(totals) if totals else None


# The regularisers the budget fits, as ModelConfig and TrainState name them (None in the config = auto).
RATES = ("dropout", "weight_drop", "embed_drop")
# DropConnect and embedding dropout as multiples of the auto dropout rate: one rule fits all three.
WEIGHT_DROP_PER_DROPOUT = 1.0
EMBED_DROP_PER_DROPOUT = 0.5


def auto_rates(epochs: float) -> dict[str, float]:
    """Every auto regulariser's rate for a run planned to make ``epochs`` passes: :func:`auto_dropout`'s rule,
    and the others in fixed proportion to it (they fight the same overfitting, which grows with passes)."""
    dropout = auto_dropout(epochs)
    return {"dropout": dropout, "weight_drop": round(min(DROPOUT_MAX, WEIGHT_DROP_PER_DROPOUT * dropout), 3),
            "embed_drop": round(min(DROPOUT_MAX, EMBED_DROP_PER_DROPOUT * dropout), 3)}


def reset_streams(state: tuple, window: int, share: float) -> tuple:
    """The carried state with ``share`` of its streams restarted from zero at this ``window`` (staggered).

    Stream ``b`` restarts at every window where ``(window + b) % period == 0``
    (period = round(1/share)): each window restarts the same number of
    streams, each stream restarts every ``period`` windows, and no random
    number is drawn, so a run with the share at 0 is bitwise the run without it
    and resuming needs nothing new.  Training carries state across windows, so
    without this a model meets a zero state once per pass per stream, while
    every fresh ``generate``, every validation stream and the exported page
    start from one (a 1024x1 model at 230 steps fell into ``$jjj…`` from it).
    """
    if share == 0:
        return state
    period = max(1, round(1 / share))
    batch = state[0].shape[1]
    streams = torch.arange(batch, device=state[0].device)
    keep = ((window + streams) % period != 0).to(state[0].dtype)  # (B,)
    return tuple(s * keep[None, :, None] for s in state)


class StopFlag:
    """First SIGINT/SIGTERM asks for a clean stop after the current step; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: no signal handling, the caller owns it
            self._previous.clear()
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
