"""The textbook equations in numpy (float64): the yardstick the fast torch path is tested against.

Weights use torch's layout and names (``weight_ih_l0`` stacks the gates'
input matrices row-wise in torch's order), so a model's ``state_dict`` plugs
straight in; each step function spells its cell's equations out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Array = np.ndarray


def sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


def rnn_step(x: Array, h: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array) -> Array:
    """SimpleRNN: ``h_t = tanh(W_x x_t + W_h h_{t-1} + b)``; torch splits b into b_ih + b_hh."""
    return np.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)  # (B, H)


def lstm_step(x: Array, h: Array, c: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array) -> tuple[Array, Array]:
    """LSTM, gates in torch's row order i, f, g, o: ``c_t = f*c_{t-1} + i*g``, ``h_t = o*tanh(c_t)``."""
    z = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    i, f, g, o = np.split(z, 4, axis=1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def gru_step(x: Array, h: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array) -> Array:
    """GRU as torch, cuDNN and Keras ``reset_after=True`` compute it (rows r, z, n)::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)        z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 − z) ⊙ n + z ⊙ h
    """
    xr, xz, xn = np.split(x @ W_ih.T + b_ih, 3, axis=1)  # (B, H) each
    hr, hz, hn = np.split(h @ W_hh.T + b_hh, 3, axis=1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def gru_step_textbook(x: Array, h: Array, W: Array, U: Array, b: Array) -> Array:
    """The textbook GRU (Cho et al., 2014): the reset gate scales h *before* the matmul.

    ``n = tanh(W_n x + U_n (r ⊙ h) + b_n)``.  torch and cuDNN apply ``r`` after
    the matmul instead (``r ⊙ (U_n h)``), which lets one fused matmul over ``h``
    serve all three gates; the two are different functions, not a
    reparametrisation, and agree only when ``r = 1``.
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
    """Run ``x`` (T, B, I) through the stacked cell; state is ``(h,)`` or ``(h, c)``, each (L, B, H)."""
    layers = _layer_count(params, prefix)
    h_all = [np.asarray(s, dtype=np.float64).copy() for s in state]
    seq = np.asarray(x, dtype=np.float64)
    for k in range(layers):
        W_ih, W_hh, b_ih, b_hh = (np.asarray(params[f"{prefix}{n}_l{k}"], dtype=np.float64)
                                  for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h = h_all[0][k]
        c = h_all[1][k] if cell == "lstm" else None
        outputs = []
        for t in range(seq.shape[0]):
            if cell == "rnn":
                h = rnn_step(seq[t], h, W_ih, W_hh, b_ih, b_hh)
            elif cell == "lstm":
                h, c = lstm_step(seq[t], h, c, W_ih, W_hh, b_ih, b_hh)
            elif cell == "gru":
                h = gru_step(seq[t], h, W_ih, W_hh, b_ih, b_hh)
            else:
                raise ValueError(f"unknown cell {cell!r}")
            outputs.append(h)
        h_all[0][k] = h
        if c is not None:
            h_all[1][k] = c
        seq = np.stack(outputs)  # (T, B, H)
    return seq, tuple(h_all)


def lm_forward(cell: str, params: Mapping[str, Array], ids: Array, state: tuple[Array, ...]) -> tuple[Array, tuple[Array, ...]]:
    """The whole language model: embedding → stack (``rnn.*``) → linear decoder; ids (B, T) → logits (B, T, V)."""
    emb = np.asarray(params["embedding.weight"], dtype=np.float64)[np.asarray(ids)]  # (B, T, E)
    out, final = stack_forward(cell, params, emb.transpose(1, 0, 2), state, prefix="rnn.")  # (T, B, H)
    W, b = (np.asarray(params[k], dtype=np.float64) for k in ("decoder.weight", "decoder.bias"))
    return out.transpose(1, 0, 2) @ W.T + b, final
