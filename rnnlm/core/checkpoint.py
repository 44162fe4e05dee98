"""Pickle-free, atomic, checksummed checkpoints: one ``.safetensors`` file each.

Why not ``torch.save`` + ``torch.load(weights_only=True)``: that unpickler had a
code-execution bypass before torch 2.6 (CVE-2025-32434) and memory corruption
before 2.10 (CVE-2026-24747).  A safetensors file is tensors plus a JSON
header, so a hostile file can at worst fail to parse.  The header's
``__metadata__["rnnlm"]`` holds the JSON described in docs/developer/rules.md, with a
sha256 of the tensor bytes that is checked on every load.

Writes go through :func:`rnnlm.core.fileio.atomic_write_to` (temp file, fsync, rename):
a crash at any moment leaves the old file or the new one.
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save_file as st_save_file

from rnnlm.core.config import RUNS_ROOT
from rnnlm.core.errors import InputError, RnnlmError
from rnnlm.core.fileio import atomic_write_to

FORMAT = "rnnlm-checkpoint"
VERSION = 1
SUFFIX = ".safetensors"


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))  # no copy of the bytes
    return digest.hexdigest()


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write atomically; on failure (disk full) the previous file at ``path`` is untouched."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = dict(meta, format=FORMAT, version=VERSION, checksum=tensor_checksum(tensors))
    metadata = {"rnnlm": json.dumps(header)}
    try:  # streamed to the file: the whole checkpoint is never one bytes object in memory
        return atomic_write_to(path, lambda tmp: st_save_file(tensors, str(tmp), metadata=metadata), durable=True)
    except OSError as exc:
        what = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise RnnlmError(f"could not save {path} ({what}); the previous checkpoint there is intact") from exc


def _describe_foreign(data: bytes) -> str | None:
    """What a non-safetensors file is, or None for a safetensors file.

    A safetensors file starts with its header length (8 bytes, little-endian,
    any value — its first byte may well be 0x80) and then ``{``; only files
    without that shape are checked for the pickle and zip magic numbers.
    """
    header_len = int.from_bytes(data[:8], "little")
    if data[8:9] == b"{" and 8 + header_len <= len(data) + (1 << 20):
        return None
    if data[:2] == b"PK":
        return "a torch.save zip archive (pickle inside)"
    if data[:1] == b"\x80":
        return "a Python pickle"
    return None


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint; anything else is an InputError saying what it is."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass a .safetensors file or a run directory")
    data = path.read_bytes()
    foreign = _describe_foreign(data)
    if foreign:
        raise InputError(f"{path} is {foreign}, not an rnnlm checkpoint; pickles are never loaded (they can run code)")
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        if len(data) < 8 or data[8:9] != b"{":
            raise InputError(f"{path} is not a checkpoint (not a safetensors file)") from exc
        raise InputError(f"corrupted checkpoint: {path} (truncated or damaged: {exc})") from exc
    if "rnnlm" not in metadata:
        raise InputError(f"{path} is a safetensors file from another program, not an rnnlm checkpoint")
    try:
        meta = json.loads(metadata["rnnlm"])
    except json.JSONDecodeError as exc:
        raise InputError(f"corrupted checkpoint: {path} (unreadable header)") from exc
    if meta.get("format") != FORMAT:
        raise InputError(f"{path} is not an rnnlm checkpoint (format {meta.get('format')!r})")
    if int(meta.get("version", 0)) > VERSION:
        raise InputError(
            f"{path} has checkpoint format version {meta['version']}, newer than this rnnlm reads ({VERSION}); upgrade rnnlm"
        )
    if tensor_checksum(tensors) != meta.get("checksum"):
        raise InputError(f"corrupted checkpoint: {path} (checksum mismatch)")
    return meta, tensors


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Flatten an optimizer's state into ``optim.<param>.<key>`` tensors plus JSON param groups."""
    state = optimizer.state_dict()
    tensors = {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, state["param_groups"]


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix.`` with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _shape(tensor: torch.Tensor) -> str:
    """``(256, 64)``, as a user reads a shape (not ``torch.Size([256, 64])``)."""
    return "(" + ", ".join(map(str, tensor.shape)) + ")"


def load_weights(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Put a checkpoint's ``model.*`` tensors into ``module``, which was built from the same checkpoint's header.

    The checksum covers the tensors only, so a header whose config was edited
    (another hidden size, depth or cell) still passes it and then describes a
    model the tensors do not fit; torch's ``load_state_dict`` would report that
    as one line per tensor.  Shapes and names are compared first, so the user
    reads one line naming the first tensor that disagrees.
    """
    weights = prefixed(tensors, "model")
    expected = module.state_dict()
    edited = "the header or the tensors were edited"
    wrong = [name for name in expected if name in weights and weights[name].shape != expected[name].shape]
    if wrong:
        more = f" (and {len(wrong) - 1} more tensors differ)" if len(wrong) > 1 else ""
        name = wrong[0]
        raise InputError(f"checkpoint {path}: tensor model.{name} has shape {_shape(weights[name])} but the header's "
                         f"config implies {_shape(expected[name])}{more}; {edited}")
    missing = [name for name in expected if name not in weights]
    if missing:
        raise InputError(f"checkpoint {path}: the header's config implies a tensor model.{missing[0]} that the file "
                         f"lacks; {edited}")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise InputError(f"checkpoint {path}: tensor model.{extra[0]} is not part of the model the header's config "
                         f"describes; {edited}")
    module.load_state_dict(weights)


def resolve_checkpoint(path: Path | None, latest: bool = False, root: Path = RUNS_ROOT) -> Path:
    """A checkpoint file from a file, a run directory (→ best, or latest), or the newest run under ``root``."""
    if path is None:
        runs = sorted(root.glob(f"*/latest{SUFFIX}"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
        if not runs:
            raise InputError(f"no checkpoint given and no runs under {root}/; train one with `rnnlm train CORPUS`")
        path = runs[-1].parent
    path = Path(path)
    if path.is_dir():
        names = [f"latest{SUFFIX}"] if latest else [f"best{SUFFIX}", f"latest{SUFFIX}"]
        for name in names:
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path} holds no {' or '.join(names)}; is it a run directory from `rnnlm train`?")
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    return path
