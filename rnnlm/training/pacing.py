"""The training loop's timekeepers: training seconds apart from pauses, the step rate a time budget is fitted
from, and the loss and throughput window behind each ``log`` event.

They are the bookkeeping ``Trainer.run`` used to hold in ten local variables;
named, the loop reads as what it does (validate, save, step, fit, log), and
each rule here is stated once: validation and saving are pauses, never step
time (a fit that counted them would plan too few steps), and throughput is
characters per second of training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


class TrainingClock:
    """Wall-clock time, and the seconds of it spent training: everything but the pauses taken through :meth:`pause`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self.paused_s = 0.0

    def now(self) -> float:
        return self.clock()

    def training_s(self, now: float | None = None) -> float:
        """Seconds in training steps since the clock started (at ``now``, or now)."""
        return (self.clock() if now is None else now) - self.started - self.paused_s

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Time spent inside the block (a validation, a save) is not training time."""
        start = self.clock()
        try:
            yield
        finally:
            self.paused_s += self.clock() - start


class StepRate:
    """Seconds per training step, measured from a mark on the training clock (the steps before it pay one-off
    costs and are left out: see ``trainer.CALIBRATE_SKIP``)."""

    def __init__(self) -> None:
        self.mark: tuple[int, float] | None = None  # (step, training seconds) where the measurement began

    def start(self, step: int, training_s: float) -> None:
        self.mark = (step, training_s)

    def steps_since(self, step: int) -> int:
        return 0 if self.mark is None else step - self.mark[0]

    def seconds_per_step(self, step: int, training_s: float) -> float:
        return (training_s - self.mark[1]) / (step - self.mark[0])


class LogWindow:
    """The loss and the characters and tokens trained since the last ``log`` event."""

    def __init__(self, chars: int, tokens: int, training_s: float, wall: float) -> None:
        self._reset(chars, tokens, training_s, wall)

    def _reset(self, chars: int, tokens: int, training_s: float, wall: float) -> None:
        self.loss: torch.Tensor | None = None  # summed on the device: reading it each step would sync
        self.steps, self.chars, self.tokens, self.training_s, self.wall = 0, chars, tokens, training_s, wall

    def add(self, loss: torch.Tensor | None) -> None:
        """A step's loss; None (a skipped non-finite step) is left out of the mean."""
        if loss is not None:
            self.loss = loss if self.loss is None else self.loss + loss
            self.steps += 1

    def due(self, wall: float, every_s: float) -> bool:
        return self.steps > 0 and wall - self.wall >= every_s

    def flush(self, chars: int, tokens: int, training_s: float, wall: float) -> dict[str, Any]:
        """The window's figures (loss in nats per token, bpc, throughput); a new window starts."""
        mean = float(self.loss) / self.steps
        seconds = max(training_s - self.training_s, 1e-9)
        new_chars, new_tokens = chars - self.chars, tokens - self.tokens
        figures = {"loss": mean, "bpc": mean * new_tokens / max(new_chars, 1) / math.log(2),
                   "chars_per_s": new_chars / seconds, "tokens_per_s": new_tokens / seconds}
        self._reset(chars, tokens, training_s, wall)
        return figures


__all__ = ["LogWindow", "StepRate", "TrainingClock"]
