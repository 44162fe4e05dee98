"""GRU as torch, cuDNN and Keras ``reset_after=True`` compute it, rows r, z, n::

    r = σ(W_ir x + b_ir + W_hr h + b_hr)        z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

The reset gate scales ``W_hn h + b_hn`` after the product, so the step needs
``gh`` apart from ``gx`` (``gh_apart``: int8 makes two products per layer).
The textbook GRU (Cho et al., 2014) scales h before it; see
:func:`rnnlm.model.reference.gru_step_textbook` for why torch differs.
``gru.js`` is the page's step.
"""

from __future__ import annotations

from rnnlm.model.cells.base import Array, Cell, Ops


def step(ops: Ops, gx: Array, gh: Array | None, state: tuple[Array, ...]) -> tuple[tuple[Array, ...], dict[str, Array]]:
    """One step; signals r, z, n."""
    (h,) = state
    H = h.shape[-1]
    rz = ops.sigmoid(gx[:, : 2 * H] + gh[:, : 2 * H])  # (B, 2H): one call for both gates
    r, z = rz[:, :H], rz[:, H:]
    n = ops.tanh(ops.addcmul(gx[:, 2 * H :], r, gh[:, 2 * H :]))  # tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    return (ops.lerp(n, h, z),), {"r": r, "z": z, "n": n}  # (1 − z) ⊙ n + z ⊙ h


CELL = Cell("gru", "GRU", "GRU", gates=3, state=("h",), signals=("h", "r", "z", "n"), sigmoid_gates=("r", "z"),
            step=step, gh_apart=True)
