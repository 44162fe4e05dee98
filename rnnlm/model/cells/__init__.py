"""The cells, one module each: the facts every layer reads about a cell, and its equations, in one place.

Each ``rnnlm/model/cells/<name>.py`` defines ``CELL``, a :class:`Cell`: its
name, Keras name, torch's module (``getattr(nn, torch_module)``, as
pytorch/examples' word_language_model picks its cell), the gate blocks its
weight matrices stack, its recurrent state, the signals ``inspect`` shows and
which of them are sigmoid gates, and its step, written once for numpy and
torch (:mod:`rnnlm.model.cells.base`); ``<name>.js`` beside it is the same
step for the exported page.  The reference, the unrolled step, int8 and the
page ask the entry and never branch on a cell's name.

The registry holds the cells ``core.config.CELLS`` names (what ``--cell``
accepts), each imported from the module of that name: a new cell is its
name there plus its two files here, and no list in this package to edit.
Torch-free, so ``summary`` and the CLI read it without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from types import MappingProxyType

from rnnlm.core.config import CELLS
from rnnlm.model.cells.base import Cell, Ops


def _entry(name: str) -> Cell:
    cell = import_module(f"{__name__}.{name}").CELL
    assert isinstance(cell, Cell) and cell.name == name, f"{__name__}.{name}.CELL must be the Cell named {name!r}"
    return cell


_CELLS = {name: _entry(name) for name in CELLS}
REGISTRY = MappingProxyType(_CELLS)  # read-only; tests register a toy cell by patching _CELLS

__all__ = ["REGISTRY", "Cell", "Ops"]
