"""int8 weights for fast batch-1 sampling on CPU.

At batch 1 a recurrent step is a chain of matrix-vector products, bound by
reading the weights from memory; int8 weights are a quarter of fp32's bytes.
Dynamic quantisation keeps activations in float and quantises only weights,
so it needs no calibration data and works on any trained checkpoint.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from .errors import InputError
from .sample import model_device


def quantize_int8(model: nn.Module) -> nn.Module:
    """A dynamic-int8 copy of ``model`` (the original is left untouched), in eval mode.

    ``torch.ao.quantization.quantize_dynamic`` swaps ``nn.LSTM`` / ``nn.GRU`` /
    ``nn.Linear`` submodules for int8 versions and keeps the ``RNNLM`` wrapper,
    so the copy still has ``config``, ``init_state`` and ``forward(ids, state)``.
    It has no mapping for ``nn.RNN``, so for SimpleRNN only the output layer
    is quantised.  The API is deprecated in favour of torchao; it stays behind
    this one function so it can be swapped for torchao later, and its
    deprecation warnings are silenced only here.
    """
    device = model_device(model)
    if device.type != "cpu":
        raise InputError(f"int8 quantisation runs on CPU only; the model is on {device} (use --device cpu)")
    float_copy = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(
            float_copy, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8, inplace=True
        )
    return quantized


__all__ = ["quantize_int8"]
