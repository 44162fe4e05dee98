"""int8 weights for fast batch-1 sampling on CPU.

At batch 1 a recurrent step is a chain of matrix-vector products, bound by
reading the weights from memory; int8 weights are a quarter of fp32's bytes.
Dynamic quantisation keeps activations in float and quantises only weights
(one scale per output row), so it needs no calibration data and works on any
trained checkpoint.

Why not ``torch.ao.quantization.quantize_dynamic``: it has no mapping for
``nn.RNN`` (SimpleRNN would stay fp32), and its LSTM multiplies ``W_ih x`` and
``W_hh h`` separately.  Each int8 product costs ~20 µs of fixed overhead at
batch 1 whatever its size (measured: a 65×512 product 20 µs, a 2048×1024 one
31 µs), so :class:`Int8RNNLM` multiplies ``W [x; h]`` once per layer where the
cell reads only the sum (SimpleRNN, LSTM; GRU needs two products) and keeps
small output layers in fp32 (7 µs for 65×512).  Measured on a 2×512 LSTM:
110 µs per step against ~140 µs.  The int8 kernels are fbgemm's, reached
through ``torch.ops.quantized`` (deprecated in favour of torchao, which has
no faster CPU path for this shape yet): they stay behind :func:`quantize_int8`
so the backend can be swapped, and their deprecation warnings are silenced
only here.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from rnnlm.core.device import model_device
from rnnlm.core.errors import InputError
from rnnlm.model.cells import REGISTRY
from rnnlm.model.network import RNNLM, State, zero_state
from rnnlm.model.unroll import TORCH

# Output layers at least this big (vocab × hidden) are quantised too: below it fp32 is faster at batch 1.
INT8_DECODER_MIN_WEIGHTS = 1 << 20


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize.*deprecated.*", category=UserWarning)
        yield


def _pack(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-row symmetric int8 weights and a float bias, packed for fbgemm's dynamic linear."""
    weight = weight.detach().float().contiguous()
    scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12).double()
    with _quiet():
        q = torch.quantize_per_channel(weight, scale, torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, bias.detach().float().contiguous())


def _int8_linear(x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """``W x + b`` for float ``x`` (B, in) with packed int8 ``W``; activations are quantised per call, per row."""
    return torch.ops.quantized.linear_dynamic(x, packed, True)


class Int8Linear(nn.Module):
    """``y = W x + b`` with int8 ``W`` and float ``x``, ``b``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.packed = _pack(linear.weight, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return _int8_linear(x.reshape(-1, shape[-1]), self.packed).reshape(*shape[:-1], -1)


class Int8RNNLM(nn.Module):
    """An int8 copy of an :class:`RNNLM` with the same interface: ``config``, ``init_state``, ``forward(ids, state)``.

    The cells are their registry entries' steps (:mod:`rnnlm.model.cells`, the
    equations the numpy reference runs), stepped in torch.  A cell whose step
    reads only ``W_ih x + b_ih + W_hh h + b_hh`` (``gh_apart`` false: SimpleRNN,
    LSTM) takes one product ``W [x; h] + b`` per layer (``W = [W_ih | W_hh]``,
    ``b = b_ih + b_hh``) and gets the sum; one that reads ``W_hh h + b_hh`` apart
    (GRU gates ``W_hn h + b_hn`` by ``r``) takes two.  Sequences run one step at
    a time: this module is for sampling, where each step waits for the previous
    token anyway.
    """

    def __init__(self, model: RNNLM) -> None:
        super().__init__()
        self.config = model.config
        self.cell = REGISTRY[self.config.cell]
        self.embedding = copy.deepcopy(model.embedding)
        big = model.decoder.weight.numel() >= INT8_DECODER_MIN_WEIGHTS
        self.decoder = Int8Linear(model.decoder) if big else copy.deepcopy(model.decoder)
        self.hidden = self.config.hidden_size
        self.layers: list[tuple[torch.Tensor, ...]] = []  # per layer: (W [x; h],) or (W_ih, W_hh), packed
        for k in range(self.config.num_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, f"{n}_l{k}").detach()
                                      for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            if self.cell.gh_apart:
                self.layers.append((_pack(w_ih, b_ih), _pack(w_hh, b_hh)))
            else:
                self.layers.append((_pack(torch.cat([w_ih, w_hh], dim=1), b_ih + b_hh),))

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return zero_state(self.config, batch_size, device or "cpu")

    def _step(self, x: torch.Tensor, k: int, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """One layer, one time step: x (B, I) and the layer's state (each (B, H), h first) → its new state.

        Few ops: each costs ~1 µs at batch 1.
        """
        packed = self.layers[k]
        if len(packed) == 1:  # the step reads only the sum: (B, G·H) from one product, no gh
            gx, gh = _int8_linear(torch.cat([x, state[0]], dim=1), packed[0]), None
        else:
            gx, gh = _int8_linear(x, packed[0]), _int8_linear(state[0], packed[1])  # (B, G·H) each
        return self.cell.step(TORCH, gx, gh, state)[0]

    def forward(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) and the state after the last step, as :meth:`RNNLM.forward` in eval mode."""
        layer_states = list(zip(*[s.unbind(0) for s in state]))  # L × the layer's state, each (B, H)
        emb = F.embedding(ids, self.embedding.weight)  # (B, T, E); the functional form skips module-call overhead
        step, layers, outputs = self._step, range(len(layer_states)), []  # local names: ~1 µs a step at batch 1
        for t in range(ids.shape[1]):
            x = emb[:, t]  # (B, E)
            for k in layers:
                layer_state = layer_states[k] = step(x, k, layer_states[k])
                x = layer_state[0]
            outputs.append(x)
        logits = self.decoder(torch.stack(outputs, dim=1))  # (B, T, V)
        return logits, tuple([torch.stack(s) for s in zip(*layer_states)])


def quantize_int8(model: nn.Module) -> Int8RNNLM:
    """An int8 copy of ``model`` for sampling on CPU (the original is left untouched), in eval mode."""
    device = model_device(model)
    if device.type != "cpu":
        raise InputError(f"int8 quantisation runs on CPU only; the model is on {device} (use --device cpu)")
    return Int8RNNLM(model).eval()


__all__ = ["Int8Linear", "Int8RNNLM", "quantize_int8"]
