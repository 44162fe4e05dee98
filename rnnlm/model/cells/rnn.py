"""SimpleRNN (Elman; Keras's ``SimpleRNN``), one tanh layer::

    h_t = tanh(W_x x_t + W_h h_{t-1} + b)

torch splits ``b`` into ``b_ih + b_hh`` (one bias more per layer than the
textbook counts; ``rnnlm summary`` shows both).  The step reads only
``gx + gh``, so int8 multiplies ``W [x; h]`` once.  ``rnn.js`` is the page's step.
"""

from __future__ import annotations

from rnnlm.model.cells.base import Array, Cell, Ops, summed


def step(ops: Ops, gx: Array, gh: Array | None, state: tuple[Array, ...]) -> tuple[tuple[Array, ...], dict[str, Array]]:
    """``h' = tanh(gx + gh)``: no signals besides h."""
    return (ops.tanh(summed(gx, gh)),), {}  # (B, H)


CELL = Cell("rnn", "SimpleRNN", "RNN", gates=1, state=("h",), signals=("h",), sigmoid_gates=(), step=step,
            torch_kwargs={"nonlinearity": "tanh"})
