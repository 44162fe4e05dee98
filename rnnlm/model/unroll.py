"""Per-step states and gates, recomputed from a checkpoint's weights.

torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` return only the top
layer's ``h`` at each step and the last state of each layer; the cell state and
the gates at every step, which ``inspect`` shows, exist only inside the kernel.
So they are recomputed here with each cell's step from its registry entry
(:mod:`rnnlm.model.cells`, the same equations the numpy reference runs), in
torch through :data:`TORCH`, so the same steps also carry gradients for
:mod:`rnnlm.inspection.gradreach`.  A test holds the recomputed ``h`` equal to
the fused forward pass within 1e-5 for every cell at 1–3 layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnlm.model.cells import REGISTRY, Ops
from rnnlm.model.network import RNNLM, State

TORCH = Ops(sigmoid=torch.sigmoid, tanh=torch.tanh, addcmul=torch.addcmul, lerp=torch.lerp)

# The per-step signals of each cell, in display order.  An LSTM's ``c`` is stored as tanh(c)
# (rnnlm/model/cells/lstm.py says why).
SIGNALS = {name: cell.signals for name, cell in REGISTRY.items()}
# Sigmoid gates, whose saturation (below 0.1 / above 0.9) the 2015 paper plotted.
SIGMOID_GATES = {name: cell.sigmoid_gates for name, cell in REGISTRY.items()}
# Value range of each signal: tanh-shaped ones in [-1, 1], sigmoid gates in [0, 1] (Cell.signal_range).
SIGNAL_RANGE = {signal: cell.signal_range(signal) for cell in REGISTRY.values() for signal in cell.signals}


@dataclass(frozen=True)
class LayerWeights:
    """One layer's matrices in torch's layout (gates stacked row-wise)."""

    W_ih: torch.Tensor  # (G·H, I)
    W_hh: torch.Tensor  # (G·H, H)
    b_ih: torch.Tensor  # (G·H,)
    b_hh: torch.Tensor  # (G·H,)


def layer_weights(module: RNNLM, layer: int) -> LayerWeights:
    """The detached weights of ``layer`` (0-based) of the module's recurrent stack."""
    rnn = module.rnn
    return LayerWeights(*(getattr(rnn, f"{name}_l{layer}").detach() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))


def step(cell: str, xw: torch.Tensor, state: tuple[torch.Tensor, ...],
         w: LayerWeights) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """One time step given ``xw = W_ih x + b_ih`` (B, G·H) and the layer's state (each (B, H), h first):
    the new state and the cell's signals besides h."""
    hw = torch.addmm(w.b_hh, state[0], w.W_hh.t())  # (B, G·H)
    return REGISTRY[cell].step(TORCH, xw, hw, state)


def run_layer(cell: str, x: torch.Tensor, w: LayerWeights, state: tuple[torch.Tensor, ...],
              keep: bool = False) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...], dict[str, list[torch.Tensor]]]:
    """Step one layer over x (B, T, I) from ``state`` (the cell's state for this layer, each (B, H)): the h of
    every step (a list, so gradients can be taken per step), the last state, and with ``keep`` every step's
    signals besides h."""
    xw = torch.addmm(w.b_ih, x.reshape(-1, x.shape[-1]), w.W_ih.t()).reshape(x.shape[0], x.shape[1], -1)  # (B, T, G·H)
    hs: list[torch.Tensor] = []
    kept: dict[str, list[torch.Tensor]] = {}
    for t in range(x.shape[1]):
        state, signals = step(cell, xw[:, t], state, w)
        hs.append(state[0])
        if keep:
            for name, value in signals.items():
                kept.setdefault(name, []).append(value)
    return hs, state, kept


@torch.no_grad()
def unroll(module: RNNLM, ids: torch.Tensor, state: State, progress=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every signal of every layer at every step of ``ids`` (T,), starting from ``state`` (batch 1).

    Returns ``{name: (L, T, H)}`` for each of the cell's signals (:attr:`Cell.signals`) and the logits (T, V)
    the decoder gives on the top layer's h.  ``progress(done, total)`` is
    called after each layer.
    """
    cell, layers = module.config.cell, module.config.num_layers
    x = module.embedding(ids.reshape(1, -1).long())  # (1, T, E)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in REGISTRY[cell].signals}
    for layer in range(layers):
        w = layer_weights(module, layer)
        hs, _, kept = run_layer(cell, x, w, tuple(s[layer] for s in state), keep=True)  # state: each (1, H)
        x = torch.stack(hs, dim=1)  # (1, T, H)
        out["h"].append(x[0])
        for name, values in kept.items():
            out[name].append(torch.cat(values))  # (T, H)
        if progress is not None:
            progress(layer + 1, layers)
    logits = module.decoder(x[0])  # (T, V)
    return {name: torch.stack(v) for name, v in out.items()}, logits


@torch.no_grad()
def warm(module: RNNLM, ids: torch.Tensor) -> tuple[State, torch.Tensor]:
    """The state after reading ``ids`` (T ≥ 1) with the fused kernel, and the logits predicting the next token."""
    logits, state = module(ids.reshape(1, -1).long(), module.init_state(1, ids.device))  # (1, T, V)
    return state, logits[0, -1]


__all__ = ["SIGMOID_GATES", "SIGNALS", "SIGNAL_RANGE", "TORCH", "LayerWeights", "layer_weights", "run_layer", "step",
           "unroll", "warm"]
