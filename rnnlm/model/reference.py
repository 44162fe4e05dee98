"""The textbook equations in numpy (float64): the yardstick the fast torch path is tested against.

Weights use torch's layout and names (``weight_ih_l0`` stacks the gates'
input matrices row-wise in torch's order), so a model's ``state_dict`` plugs
straight in.  Each cell's equations are written out once, in its module under
``rnnlm/model/cells/`` (the docstrings there give them in textbook form); here
they run in numpy float64 through :data:`NUMPY`, the same step the torch paths
run, so this module knows no cell by name.  :func:`gru_step_textbook` stays
here beside them: the GRU of the papers, which torch does not compute.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnlm.model.cells import REGISTRY, Ops

Array = np.ndarray


def sigmoid(x: Array) -> Array:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -709, and 1 / (1 + inf) = 0 is right
        return 1.0 / (1.0 + np.exp(-x))


NUMPY = Ops(sigmoid=sigmoid, tanh=np.tanh, addcmul=lambda a, b, c: a + b * c, lerp=lambda a, b, w: a + w * (b - a))


def cell_step(cell: str, x: Array, state: tuple[Array, ...], W_ih: Array, W_hh: Array, b_ih: Array,
              b_hh: Array) -> tuple[tuple[Array, ...], dict[str, Array]]:
    """One step of ``cell`` on x (B, I) from ``state`` (each (B, H)): the new state and the cell's signals."""
    gx = x @ W_ih.T + b_ih  # (B, G·H)
    gh = state[0] @ W_hh.T + b_hh  # (B, G·H)
    return REGISTRY[cell].step(NUMPY, gx, gh, tuple(state))


def gru_step_textbook(x: Array, h: Array, W: Array, U: Array, b: Array) -> Array:
    """The textbook GRU (Cho et al., 2014): the reset gate scales h *before* the matmul.

    ``n = tanh(W_n x + U_n (r ⊙ h) + b_n)``.  torch and cuDNN apply ``r`` after
    the matmul instead (``r ⊙ (U_n h)``, :mod:`rnnlm.model.cells.gru`), which
    lets one fused matmul over ``h`` serve all three gates; the two are
    different functions, not a reparametrisation, and agree only when ``r = 1``.
    """
    Wr, Wz, Wn = np.split(W, 3, axis=0)
    Ur, Uz, Un = np.split(U, 3, axis=0)
    br, bz, bn = np.split(b, 3)
    r = sigmoid(x @ Wr.T + h @ Ur.T + br)
    z = sigmoid(x @ Wz.T + h @ Uz.T + bz)
    n = np.tanh(x @ Wn.T + (r * h) @ Un.T + bn)
    return (1 - z) * n + z * h


def _layer_count(params: Mapping[str, Array], prefix: str) -> int:
    return sum(1 for k in params if k.startswith(f"{prefix}weight_ih_l"))


def stack_forward(cell: str, params: Mapping[str, Array], x: Array, state: tuple[Array, ...],
                  prefix: str = "") -> tuple[Array, tuple[Array, ...]]:
    """Run ``x`` (T, B, I) through the stacked cell; ``state`` holds the cell's state (``(h,)``, ``(h, c)``), each (L, B, H)."""
    if cell not in REGISTRY:
        raise ValueError(f"unknown cell {cell!r}")
    layers = _layer_count(params, prefix)
    final = [np.asarray(s, dtype=np.float64).copy() for s in state]
    seq = np.asarray(x, dtype=np.float64)
    for k in range(layers):
        W_ih, W_hh, b_ih, b_hh = (np.asarray(params[f"{prefix}{n}_l{k}"], dtype=np.float64)
                                  for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        layer_state = tuple(s[k] for s in final)
        outputs = []
        for t in range(seq.shape[0]):
            layer_state, _ = cell_step(cell, seq[t], layer_state, W_ih, W_hh, b_ih, b_hh)
            outputs.append(layer_state[0])
        for s, value in zip(final, layer_state):
            s[k] = value
        seq = np.stack(outputs)  # (T, B, H)
    return seq, tuple(final)


def lm_forward(cell: str, params: Mapping[str, Array], ids: Array, state: tuple[Array, ...]) -> tuple[Array, tuple[Array, ...]]:
    """The whole language model: embedding → stack (``rnn.*``) → linear decoder; ids (B, T) → logits (B, T, V)."""
    emb = np.asarray(params["embedding.weight"], dtype=np.float64)[np.asarray(ids)]  # (B, T, E)
    out, final = stack_forward(cell, params, emb.transpose(1, 0, 2), state, prefix="rnn.")  # (T, B, H)
    W, b = (np.asarray(params[k], dtype=np.float64) for k in ("decoder.weight", "decoder.bias"))
    return out.transpose(1, 0, 2) @ W.T + b, final


__all__ = ["NUMPY", "cell_step", "gru_step_textbook", "lm_forward", "sigmoid", "stack_forward"]
