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
31 µs), so :class:`Int8RNNLM` multiplies ``W [x; h]`` once per layer and keeps
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
from rnnlm.model.network import RNNLM, State, zero_state

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

    The cells are the equations of ``reference.py``, stepped in torch: SimpleRNN
    and LSTM take one product ``W [x; h] + b`` per layer (``W = [W_ih | W_hh]``,
    ``b = b_ih + b_hh``); GRU needs ``W_hn h + b_hn`` apart (it is gated by
    ``r``), so it takes two.  Sequences run one step at a time: this module is
    for sampling, where each step waits for the previous token anyway.
    """

    def __init__(self, model: RNNLM) -> None:
        super().__init__()
        self.config = model.config
        self.embedding = copy.deepcopy(model.embedding)
        big = model.decoder.weight.numel() >= INT8_DECODER_MIN_WEIGHTS
        self.decoder = Int8Linear(model.decoder) if big else copy.deepcopy(model.decoder)
        self.hidden = self.config.hidden_size
        self.layers: list[tuple[torch.Tensor, ...]] = []
        for k in range(self.config.num_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, f"{n}_l{k}").detach()
                                      for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            if self.config.cell == "gru":
                self.layers.append((_pack(w_ih, b_ih), _pack(w_hh, b_hh)))
                continue
            w, b = torch.cat([w_ih, w_hh], dim=1), b_ih + b_hh
            if self.config.cell == "lstm":  # rows i, f, g, o → i, f, o, g: one sigmoid over the first 3H
                order = torch.cat([torch.arange(0, 2 * self.hidden), torch.arange(3 * self.hidden, 4 * self.hidden),
                                   torch.arange(2 * self.hidden, 3 * self.hidden)])
                w, b = w[order], b[order]
            self.layers.append((_pack(w, b),))

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return zero_state(self.config, batch_size, device or "cpu")

    def _step(self, x: torch.Tensor, k: int, h: torch.Tensor, c: torch.Tensor | None):
        """One layer, one time step: x (B, I), h and c (B, H) → new h, c (few ops: each costs ~1 µs at batch 1)."""
        cell, size = self.config.cell, self.hidden
        if cell == "gru":
            w_ih, w_hh = self.layers[k]
            gx, gh = _int8_linear(x, w_ih), _int8_linear(h, w_hh)  # (B, 3H) each, rows r, z, n
            rz = torch.sigmoid(gx[:, : 2 * size] + gh[:, : 2 * size])  # (B, 2H)
            r, z = rz[:, :size], rz[:, size:]
            n = torch.tanh(torch.addcmul(gx[:, 2 * size :], r, gh[:, 2 * size :]))
            return torch.addcmul(n, z, h - n), None  # (1 − z) ⊙ n + z ⊙ h
        pre = _int8_linear(torch.cat([x, h], dim=1), self.layers[k][0])  # (B, gates·H)
        if cell == "rnn":
            return torch.tanh(pre), None
        gates = torch.sigmoid(pre[:, : 3 * size])  # (B, 3H): i, f, o
        i, f, o = gates[:, :size], gates[:, size : 2 * size], gates[:, 2 * size :]
        c = torch.addcmul(f * c, i, torch.tanh(pre[:, 3 * size :]))  # f ⊙ c + i ⊙ g
        return o * torch.tanh(c), c

    def forward(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) and the state after the last step, as :meth:`RNNLM.forward` in eval mode."""
        hs = list(state[0].unbind(0))  # L × (B, H)
        cs = list(state[1].unbind(0)) if self.config.cell == "lstm" else [None] * len(hs)
        emb = F.embedding(ids, self.embedding.weight)  # (B, T, E); the functional form skips module-call overhead
        outputs = []
        for t in range(ids.shape[1]):
            x = emb[:, t]  # (B, E)
            for k in range(len(hs)):
                hs[k], cs[k] = self._step(x, k, hs[k], cs[k])
                x = hs[k]
            outputs.append(x)
        logits = self.decoder(torch.stack(outputs, dim=1))  # (B, T, V)
        new_state = (torch.stack(hs),) if cs[0] is None else (torch.stack(hs), torch.stack(cs))
        return logits, new_state


def quantize_int8(model: nn.Module) -> Int8RNNLM:
    """An int8 copy of ``model`` for sampling on CPU (the original is left untouched), in eval mode."""
    device = model_device(model)
    if device.type != "cpu":
        raise InputError(f"int8 quantisation runs on CPU only; the model is on {device} (use --device cpu)")
    return Int8RNNLM(model).eval()


__all__ = ["quantize_int8", "Int8RNNLM", "Int8Linear"]
