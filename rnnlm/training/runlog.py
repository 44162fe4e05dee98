"""Run-directory subscribers to trainer events: ``metrics.jsonl`` and ``curves.png``.

They turn events into files a person (or a script) reads afterwards; the
trainer itself never writes anything but checkpoints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rnnlm.core.fileio import atomic_write
from rnnlm.training.events import Event

LOGGED = ("log", "eval", "warning", "done")


class MetricsWriter:
    """Appends one JSON line per log / validation / warning / done event."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, event: Event) -> None:
        if event.kind not in LOGGED:
            return
        record = {"event": event.kind, "step": event.step, "total_steps": event.total_steps,
                  "time_s": round(event.elapsed_s, 3), **event.data}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class CurvePlot:
    """Redraws train/val bpc against minutes at every validation (headless matplotlib)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.train: list[tuple[float, float]] = []
        self.val: list[tuple[float, float]] = []

    def __call__(self, event: Event) -> None:
        if event.kind == "log":
            self.train.append((event.elapsed_s / 60, event.data["bpc"]))
        elif event.kind == "eval":
            self.val.append((event.elapsed_s / 60, event.data["val_bpc"]))
            self.draw()

    def draw(self) -> None:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        if self.train:
            ax.plot(*zip(*self.train), color="#9ab", lw=1, label="train bpc")
        if self.val:
            ax.plot(*zip(*self.val), "o-", color="#c33", ms=3, label="validation bpc")
        finite = [v for _, v in self.train + self.val if math.isfinite(v)]
        if finite:
            ax.set_ylim(min(finite) - 0.05, min(max(finite), min(finite) + 2.5))
        ax.set_xlabel("training time (minutes)")
        ax.set_ylabel("bits per character")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        atomic_write(self.path, lambda f: fig.savefig(f, format="png"))
        plt.close(fig)


def _pyplot():
    """matplotlib with the headless backend, imported only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_callbacks(out: Path) -> list:
    return [MetricsWriter(out / "metrics.jsonl"), CurvePlot(out / "curves.png")]
