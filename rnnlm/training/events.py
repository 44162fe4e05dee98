"""What a training run reports, and to whom: the trainer emits events, subscribers (the progress bar, the run
log, the curve plot) render or store them.  A module of its own so subscribers need this type, not the trainer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Event:
    """Something the trainer reports: ``start``, ``log``, ``eval``, ``checkpoint``, ``warning`` or ``done`` (and ``size`` and ``phase`` from ``rnnlm.train``)."""

    kind: str
    step: int
    total_steps: int | None
    elapsed_s: float
    data: dict[str, Any] = field(default_factory=dict)


Callback = Callable[[Event], None]


__all__ = ["Callback", "Event"]
