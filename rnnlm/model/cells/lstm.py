"""LSTM (Hochreiter & Schmidhuber; the forget gate of Gers et al.), gates in torch's row order i, f, g, o::

    i = σ(W_i x + U_i h + b_i)     f = σ(W_f x + U_f h + b_f)     o = σ(W_o x + U_o h + b_o)
    g = tanh(W_g x + U_g h + b_g)
    c' = f ⊙ c + i ⊙ g             h' = o ⊙ tanh(c')

torch splits each ``b`` into ``b_ih + b_hh``.  The step reads only ``gx + gh``
(int8 multiplies ``W [x; h]`` once).  It records c as tanh(c): bounded like h,
and exactly what the cell computes before the output gate (a monotone map, so
rank-based scores do not change).  ``lstm.js`` is the page's step.
"""

from __future__ import annotations

from rnnlm.model.cells.base import Array, Cell, Ops, summed


def step(ops: Ops, gx: Array, gh: Array | None, state: tuple[Array, ...]) -> tuple[tuple[Array, ...], dict[str, Array]]:
    """One step; signals c (as tanh(c)), i, f, g, o."""
    _, c = state
    H = c.shape[-1]
    z = summed(gx, gh)  # (B, 4H)
    # One sigmoid over all 4H rows, its g block unused: at batch 1 (int8 sampling) each call costs about a
    # microsecond whatever its width, so one wide call beats three narrow ones.  Elementwise, so i, f, o are
    # exactly what σ of each block alone gives.
    s = ops.sigmoid(z)
    i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 3 * H :]
    g = ops.tanh(z[:, 2 * H : 3 * H])
    c = ops.addcmul(f * c, i, g)  # f ⊙ c + i ⊙ g
    tc = ops.tanh(c)
    return (o * tc, c), {"c": tc, "i": i, "f": f, "g": g, "o": o}


CELL = Cell("lstm", "LSTM", "LSTM", gates=4, state=("h", "c"), signals=("h", "c", "i", "f", "g", "o"),
            sigmoid_gates=("i", "f", "o"), step=step, slow_onednn_step=True)
