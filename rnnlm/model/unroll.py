"""Per-step states and gates, recomputed from a checkpoint's weights.

torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` return only the top
layer's ``h`` at each step and the last state of each layer; the cell state and
the gates at every step, which ``inspect`` shows, exist only inside the kernel.
So they are recomputed here with the equations of :mod:`rnnlm.model.reference`
(torch's gate order i f g o, and its GRU form ``n = tanh(W_in x + b_in + r ⊙
(W_hn h + b_hn))``), written in torch so the same steps also carry gradients
for :mod:`rnnlm.inspection.gradreach`.  A test holds the recomputed ``h`` equal to the
fused forward pass within 1e-5 for every cell at 1–3 layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnlm.model.cells import REGISTRY
from rnnlm.model.network import RNNLM, State

# The per-step signals of each cell, in display order.  ``c`` is stored as tanh(c): bounded like h, and the
# LSTM computes exactly that before the output gate (a monotone map, so rank-based scores do not change).
SIGNALS = {name: cell.signals for name, cell in REGISTRY.items()}
# Sigmoid gates, whose saturation (below 0.1 / above 0.9) the 2015 paper plotted.
SIGMOID_GATES = {name: cell.sigmoid_gates for name, cell in REGISTRY.items()}
# Value range of each signal: tanh-shaped ones in [-1, 1], sigmoid gates in [0, 1].
SIGNAL_RANGE = {"h": (-1.0, 1.0), "c": (-1.0, 1.0), "g": (-1.0, 1.0), "n": (-1.0, 1.0),
                "i": (0.0, 1.0), "f": (0.0, 1.0), "o": (0.0, 1.0), "r": (0.0, 1.0), "z": (0.0, 1.0)}


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


def step(cell: str, xw: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, w: LayerWeights,
         keep: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
    """One time step given ``xw = W_ih x + b_ih`` (B, G·H): the new h, c and (with ``keep``) the gates."""
    hw = torch.addmm(w.b_hh, h, w.W_hh.t())  # (B, G·H)
    if cell == "rnn":
        return torch.tanh(xw + hw), None, {}
    if cell == "lstm":
        i, f, g, o = (xw + hw).chunk(4, dim=1)  # (B, H) each
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        tc = torch.tanh(c)
        return o * tc, c, ({"c": tc, "i": i, "f": f, "g": g, "o": o} if keep else {})
    xr, xz, xn = xw.chunk(3, dim=1)
    hr, hz, hn = hw.chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h, None, ({"r": r, "z": z, "n": n} if keep else {})


def run_layer(cell: str, x: torch.Tensor, w: LayerWeights, h: torch.Tensor, c: torch.Tensor | None,
              keep: bool = False) -> tuple[list[torch.Tensor], torch.Tensor | None, dict[str, list[torch.Tensor]]]:
    """Step one layer over x (B, T, I): the h of every step (a list, so gradients can be taken per step),
    the last c, and with ``keep`` every step's gates."""
    xw = torch.addmm(w.b_ih, x.reshape(-1, x.shape[-1]), w.W_ih.t()).reshape(x.shape[0], x.shape[1], -1)  # (B, T, G·H)
    hs: list[torch.Tensor] = []
    kept: dict[str, list[torch.Tensor]] = {}
    for t in range(x.shape[1]):
        h, c, gates = step(cell, xw[:, t], h, c, w, keep)
        hs.append(h)
        for name, value in gates.items():
            kept.setdefault(name, []).append(value)
    return hs, c, kept


@torch.no_grad()
def unroll(module: RNNLM, ids: torch.Tensor, state: State, progress=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every signal of every layer at every step of ``ids`` (T,), starting from ``state`` (batch 1).

    Returns ``{name: (L, T, H)}`` (see :data:`SIGNALS`) and the logits (T, V)
    the decoder gives on the top layer's h.  ``progress(done, total)`` is
    called after each layer.
    """
    cell, layers = module.config.cell, module.config.num_layers
    x = module.embedding(ids.reshape(1, -1).long())  # (1, T, E)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in SIGNALS[cell]}
    for layer in range(layers):
        w = layer_weights(module, layer)
        c0 = state[1][layer] if cell == "lstm" else None  # (1, H)
        hs, _, kept = run_layer(cell, x, w, state[0][layer], c0, keep=True)
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


__all__ = ["SIGNALS", "SIGMOID_GATES", "SIGNAL_RANGE", "LayerWeights", "layer_weights", "step", "run_layer", "unroll", "warm"]
