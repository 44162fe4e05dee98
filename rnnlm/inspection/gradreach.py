"""Gradient reach: the vanishing gradient of backpropagation through time, measured.

For a position t the loss L_t is the cross-entropy of predicting token t+1.
Its gradient with respect to the hidden state k steps back, ‖∂L_t/∂h_{t−k}‖,
says how much what happened k steps ago can still be learned from.  It is
computed for k = 1…``max_k`` on windows spread evenly over a text (each warmed
on the text before it with the fused kernel, then stepped with
:mod:`rnnlm.model.unroll` so every step's h is a node of the graph), and averaged
over the windows.  One backward pass serves all windows: each is its own batch
row, and rows do not interact.

A SimpleRNN's curve falls fastest, which is the textbook reason for gates; the
summary numbers are the k where the norm falls below half and below 1% of its
k=1 value (``None``: not within ``max_k``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.core.fileio import atomic_write
from rnnlm.model.network import RNNLM
from rnnlm.model.unroll import layer_weights, run_layer
from rnnlm.inspection.defaults import DEFAULT_MAX_K

DEFAULT_WINDOWS = 32
DEFAULT_WARMUP = 64


@dataclass(frozen=True)
class GradientReach:
    """``norms[l, k-1]`` = mean over windows of ‖∂L_t/∂h^l_{t−k}‖ for layer l (0 = bottom)."""

    norms: np.ndarray  # (L, max_k)
    windows: int

    @property
    def max_k(self) -> int:
        return int(self.norms.shape[1])

    @property
    def top(self) -> np.ndarray:
        return self.norms[-1]

    def k_below(self, fraction: float, layer: int = -1) -> int | None:
        """The first k whose norm is below ``fraction`` of the k=1 norm; None when none is within max_k."""
        curve = self.norms[layer]
        below = np.flatnonzero(curve < fraction * curve[0])
        return int(below[0]) + 1 if len(below) else None

    @classmethod
    def from_dict(cls, data: dict) -> GradientReach:
        return cls(np.asarray(data["norms"], dtype=np.float64), int(data["windows"]))

    def to_dict(self) -> dict:
        return {"max_k": self.max_k, "windows": self.windows, "norms": [[float(f"{v:.6g}") for v in row] for row in self.norms],
                "k_below_1pct": self.k_below(0.01), "half_life": self.k_below(0.5)}


def describe_k(k: int | None, max_k: int) -> str:
    """A k for tables: the number, or "> max_k" where the norm never fell that far."""
    return f"> {max_k}" if k is None else str(k)


def gradient_reach(module: RNNLM, ids: np.ndarray, *, max_k: int = DEFAULT_MAX_K, windows: int = DEFAULT_WINDOWS,
                   warmup: int = DEFAULT_WARMUP) -> GradientReach | None:
    """Measure the reach on ``ids`` (1-D token ids); None when the text has fewer than 3 tokens.

    A short text shortens the warm-up first, then ``max_k``, so every window fits.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if n < 3:
        return None
    warmup = min(warmup, max(0, n - max_k - 2))
    max_k = min(max_k, n - warmup - 2)
    span = warmup + max_k + 2  # warm-up, then h_{t−max_k} … h_t, then the target of L_t
    windows = max(1, min(windows, n - span + 1))
    starts = np.linspace(0, n - span, windows).round().astype(np.int64)
    rows = torch.from_numpy(np.stack([ids[s : s + span] for s in starts]))  # (W, span)
    was_training = module.training
    module.eval()
    try:
        norms = _norms(module, rows, warmup, max_k)
    finally:
        module.train(was_training)
    return GradientReach(norms, windows)


def _norms(module: RNNLM, rows: torch.Tensor, warmup: int, max_k: int) -> np.ndarray:
    cell = module.config.cell
    device = next(module.parameters()).device
    rows = rows.to(device)
    with torch.no_grad():
        state = module.init_state(rows.shape[0], device)
        if warmup:
            _, state = module(rows[:, :warmup], state)
        x = module.embedding(rows[:, warmup : warmup + max_k + 1])  # (W, K+1, E)
    with torch.enable_grad():
        per_layer = []
        for layer in range(module.config.num_layers):
            h0 = state[0][layer].detach().requires_grad_(True)
            rest = tuple(s[layer].detach() for s in state[1:])  # what the cell carries besides h (an LSTM's c)
            hs, _, _ = run_layer(cell, x, layer_weights(module, layer), (h0, *rest))
            per_layer.append(hs)
            x = torch.stack(hs, dim=1)  # (W, K+1, H)
        logits = F.linear(per_layer[-1][-1], module.decoder.weight.detach(), module.decoder.bias.detach())  # (W, V)
        loss = F.cross_entropy(logits.float(), rows[:, -1], reduction="sum")
        back = [hs[max_k - k] for hs in per_layer for k in range(1, max_k + 1)]  # h_{t−k}, k = 1…K, per layer
        grads = torch.autograd.grad(loss, back)
    norms = torch.stack([g.norm(dim=1).mean() for g in grads]).reshape(len(per_layer), max_k)
    return norms.double().cpu().numpy()


def measure_run(lm, text: str) -> dict | None:
    """The reach of a loaded model (:class:`rnnlm.generation.language_model.LanguageModel`) on ``text``, as ``to_dict()``; None if too short.

    ``compare`` calls it on each run's validation text after training.
    """
    tok = lm.tokenizer
    ids = tok.encode(text, unknown="unk" if tok.unk_id is not None else "error")
    reach = gradient_reach(lm.module, ids)
    return None if reach is None else reach.to_dict()


def plot_reach(curves: dict[str, GradientReach], path: Path, title: str = "") -> None:
    """‖∂L_t/∂h_{t−k}‖ of the top layer against k, log scale, one line per run (compare's gradient-reach.png)."""
    import matplotlib

    matplotlib.use("Agg")  # headless; imported here so inspect and compare pay for matplotlib only when plotting
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, reach in curves.items():
        k1 = describe_k(reach.k_below(0.01), reach.max_k)
        curve = np.where(reach.top > 0, reach.top, np.nan)  # float32 underflow to 0 ends the line, not a floor
        ax.semilogy(np.arange(1, reach.max_k + 1), curve, lw=1.5, label=f"{name} (1% at k {k1})")
    ax.set_xlabel("k (steps back)")
    ax.set_ylabel("‖∂L_t / ∂h_{t−k}‖ (top layer, mean)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


__all__ = ["GradientReach", "gradient_reach", "measure_run", "plot_reach", "describe_k", "DEFAULT_MAX_K"]
