"""Device, precision and thread choices, made once and passed down (no globals elsewhere).

The precision rule (docs/developer/rules.md, "Vocabulary and evaluation"):
``--precision`` applies to training steps only; evaluation (validation during
training, ``eval``, ``compare``, ``inspect``) runs in float32, so ``eval``
reproduces a checkpoint's stored ``val_bpc`` to 1e-4 on any CPU, with native
bf16 or without.
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from rnnlm.core.errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when torch sees a GPU, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA GPU here; use --device cpu or auto")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX-512 BF16 or AMX), so autocast is a speed-up.

    oneDNN's own check accepts any AVX-512 core, where bf16 is emulated and
    slower than fp32, so the CPU's flags are read too (Linux ``/proc/cpuinfo``).
    """
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training, or None for plain fp32; the policy per device.

    CPU: ``bf16`` autocasts embedding, cell and decoder (oneDNN's bf16 LSTM/GRU/RNN);
    ``auto`` takes it only on CPUs with native bf16 (measured faster and no worse
    per step there; emulated elsewhere, so slower), else fp32.
    CUDA: ``bf16`` and ``auto`` (on GPUs with bf16) autocast the decoder while the
    recurrent cell stays fp32 with TF32 matmuls (see ``RNNLM.forward`` for why:
    never fp16 without a gradient scaler); ``fp32`` turns TF32 off too, for exact
    fp32.  :func:`set_cuda_matmul` applies the TF32 part.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_native_bf16() else None


@functools.cache
def _onednn_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cell_autocasts(device: torch.device) -> bool:
    """Whether the recurrent cell may run under bf16 autocast on ``device`` (else it runs fp32 beside it).

    CUDA: no.  torch's autocast wrapper for cuDNN RNNs casts weights and inputs
    to float16 whatever dtype autocast was given, and fp16 without a gradient
    scaler underflows small gradients.  CPU: where oneDNN has bf16 (any AVX-512
    core); on AVX2-only CPUs it cannot build a bf16 LSTM at all ("could not
    create a primitive descriptor"), so ``--precision bf16`` would crash there.
    """
    return device.type == "cpu" and _onednn_bf16()


def set_cuda_matmul(precision: str) -> None:
    """TF32 for CUDA matmuls and cuDNN unless ``--precision fp32`` asked for exact fp32 (a process-wide setting)."""
    allow = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Mixed precision for the forward pass in ``dtype`` (from :func:`resolve_autocast`), or nothing for fp32."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a module with no plain parameters left, e.g. int8)."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def set_threads(threads: int | None) -> None:
    """Pin intra-op threads (CPU); ``None`` keeps torch's default of one per core."""
    if threads is not None:
        if threads <= 0:
            raise InputError(f"--threads must be positive, got {threads}")
        torch.set_num_threads(threads)


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when run plainly."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
