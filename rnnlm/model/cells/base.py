"""What a cell is: the :class:`Cell` entry every cell module defines, and the :class:`Ops` its step is written in.

A cell's step is written once, generically, for every place that runs it:
the numpy float64 reference (:mod:`rnnlm.model.reference`), the torch
recomputation for ``inspect`` and gradient reach (:mod:`rnnlm.model.unroll`)
and the int8 sampler (:mod:`rnnlm.model.int8`).  It reads

* ``gx = W_ih x + b_ih`` and ``gh = W_hh h + b_hh``, each (B, G·H), their G
  blocks of H rows stacked in torch's order (so a ``state_dict`` plugs in);
* the carried state, a tuple in the order of :attr:`Cell.state` (``h`` first),
  each (B, H);
* ``ops`` (:class:`Ops`), which supplies the nonlinearities and two fused
  products (numpy's or torch's);

and uses nothing else: slicing ``z[:, k*H:(k+1)*H]``, ``+ - *`` and the ops,
which numpy arrays and torch tensors share.  It returns the new state and the
signals ``inspect`` records other than ``h`` (which is the new state's first
element).  A cell that reads only ``gx + gh`` (``gh_apart=False``) also
accepts ``gh=None`` with the sum already in ``gx``: int8 then makes one
product ``W [x; h]`` per layer instead of two (:func:`summed`).

The exported web page runs the same step in JavaScript: ``<name>.js`` beside
the cell's module, read by :meth:`Cell.js`.  This module stays torch-free, so
``rnnlm --help`` and ``rnnlm summary`` read the registry without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple

Array = Any  # a numpy array or a torch tensor: the step uses only what both have


class Ops(NamedTuple):
    """What a step may call besides arithmetic, from the caller's array library.

    The two nonlinearities, and two fused forms of arithmetic a step could
    spell out: at batch 1 (int8 sampling) every torch call costs about a
    microsecond whatever its size, and ``(1 - z) * n + z * h`` is four calls
    (9 µs measured for H = 512) where ``torch.lerp`` is one (1.7 µs).
    """

    sigmoid: Callable[[Array], Array]
    tanh: Callable[[Array], Array]
    addcmul: Callable[[Array, Array, Array], Array]  # addcmul(a, b, c) = a + b ⊙ c
    lerp: Callable[[Array, Array, Array], Array]     # lerp(a, b, w) = a + w ⊙ (b − a) = (1 − w) ⊙ a + w ⊙ b


# step(ops, gx, gh, state) -> (new state, {signal: value}); see the module's docstring.
Step = Callable[[Ops, Array, Array | None, tuple[Array, ...]], tuple[tuple[Array, ...], dict[str, Array]]]


def summed(gx: Array, gh: Array | None) -> Array:
    """``gx + gh``, or ``gx`` alone when the caller has already added them (``gh is None``)."""
    return gx if gh is None else gx + gh


@dataclass(frozen=True)
class Cell:
    name: str                         # as --cell spells it (and core.config.CELLS lists it)
    display: str                      # as Keras names the layer
    torch_module: str                 # the fused torch.nn class
    gates: int                        # weight blocks per layer (torch's rows = gates × hidden)
    state: tuple[str, ...]            # the recurrent state carried between windows, in torch's order, h first
    signals: tuple[str, ...]          # per-step signals inspect records, display order (c as tanh(c))
    sigmoid_gates: tuple[str, ...]    # the signals that are sigmoid gates (their saturation is plotted)
    step: Step = field(repr=False)    # the equations, written once for numpy and torch (module docstring)
    gh_apart: bool = False            # the step reads W_hh h + b_hh apart from W_ih x + b_ih (not only their sum)
    slow_onednn_step: bool = False    # oneDNN's CPU kernel costs ms per one-token call (generation/sample.py)
    torch_kwargs: dict[str, Any] = field(default_factory=dict)

    def signal_range(self, signal: str) -> tuple[float, float]:
        """Where a signal's values lie: sigmoid gates in [0, 1], the rest (tanh-shaped, h as well) in [-1, 1]."""
        return (0.0, 1.0) if signal in self.sigmoid_gates else (-1.0, 1.0)

    def js(self) -> str:
        """The page's step for this cell (``<name>.js`` beside its module; see ``generation/web/engine.js``)."""
        return resources.files(__package__).joinpath(f"{self.name}.js").read_text("utf-8")


__all__ = ["Array", "Cell", "Ops", "Step", "summed"]
