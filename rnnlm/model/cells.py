"""The cells, one registry entry each: the facts every layer reads about a cell, in one place.

A cell's name, its Keras name, torch's module (``getattr(nn, torch_module)``,
as pytorch/examples' word_language_model picks its cell), the gate blocks its
weight matrices stack, its recurrent state, the signals ``inspect`` shows and
which of them are sigmoid gates.  Torch-free, so ``summary`` and the CLI read it
without importing torch.  The equations themselves (``reference.py``,
``unroll.py``, ``int8.py``, the page's ``engine.js``) still branch per cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rnnlm.core.config import CELLS


@dataclass(frozen=True)
class Cell:
    name: str                         # as --cell spells it
    display: str                      # as Keras names the layer
    torch_module: str                 # the fused torch.nn class
    gates: int                        # weight blocks per layer (torch's rows = gates × hidden)
    state: tuple[str, ...]            # the recurrent state carried between windows, in torch's order
    signals: tuple[str, ...]          # per-step signals inspect records, display order (c as tanh(c))
    sigmoid_gates: tuple[str, ...]    # the signals that are sigmoid gates (their saturation is plotted)
    torch_kwargs: dict[str, Any] = field(default_factory=dict)


REGISTRY = MappingProxyType({cell.name: cell for cell in (
    Cell("rnn", "SimpleRNN", "RNN", gates=1, state=("h",), signals=("h",), sigmoid_gates=(),
         torch_kwargs={"nonlinearity": "tanh"}),
    Cell("lstm", "LSTM", "LSTM", gates=4, state=("h", "c"), signals=("h", "c", "i", "f", "g", "o"),
         sigmoid_gates=("i", "f", "o")),
    Cell("gru", "GRU", "GRU", gates=3, state=("h",), signals=("h", "r", "z", "n"), sigmoid_gates=("r", "z")),
)})
assert tuple(REGISTRY) == CELLS, "core.config.CELLS (what --cell accepts) and the registry name the same cells"

__all__ = ["Cell", "REGISTRY"]
