"""Which checkpoints a folder holds and what each is called, torch-free (``llm models`` runs it on every call).

A run directory is named by its folder (``checkpoints/shakespeare-lstm-20261124-101500`` is
``shakespeare-lstm-20261124-101500``); a loose ``.safetensors`` file by its stem.  ``rnnlm serve`` names its
models this way unless told ``NAME=CHECKPOINT``; the ``llm`` plugin lists the runs under ``./checkpoints`` and
under the folders of ``RNNLM_CHECKPOINTS`` (docs/llm.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rnnlm.core.config import RUNS_ROOT
from rnnlm.core.errors import InputError

CHECKPOINTS_ENV = "RNNLM_CHECKPOINTS"
SUFFIX = ".safetensors"
RUN_FILES = (f"best{SUFFIX}", f"latest{SUFFIX}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def model_name(path: Path) -> str:
    """A checkpoint's model name: its run directory's name (for the run's own files), else the file's stem."""
    path = Path(path)
    if path.is_dir():
        return path.resolve().name
    if path.name in RUN_FILES or re.fullmatch(r"step-\d+\.safetensors", path.name):
        if is_run_dir(path.parent) or (path.parent / "config.json").is_file():
            return path.resolve().parent.name
    return path.stem


def split_named(spec: str) -> tuple[str | None, str]:
    """``NAME=CHECKPOINT`` → (NAME, CHECKPOINT); a plain CHECKPOINT (or an existing path holding ``=``) → (None, it)."""
    name, sep, rest = spec.partition("=")
    if not sep or Path(spec).exists():
        return None, spec
    if not _NAME.fullmatch(name):
        raise InputError(f"{name!r} is not a model name: use letters, digits and . _ : + - (NAME=CHECKPOINT)")
    if not rest:
        raise InputError(f"{spec!r} names no checkpoint after '='")
    return name, rest


def folders() -> list[Path]:
    """``./checkpoints`` and each folder of ``RNNLM_CHECKPOINTS`` (separated by ``os.pathsep``), in that order."""
    extra = [Path(p).expanduser() for p in os.environ.get(CHECKPOINTS_ENV, "").split(os.pathsep) if p.strip()]
    return [RUNS_ROOT, *extra]


def runs_in(folder: Path) -> list[tuple[str, Path]]:
    """(name, path) of the runs in ``folder`` (itself, if it is one) and its loose checkpoint files, by name."""
    folder = Path(folder)
    if is_run_dir(folder):
        return [(model_name(folder), folder)]
    if not folder.is_dir():
        return []
    found = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if is_run_dir(entry):
            found.append((entry.name, entry))
        elif entry.suffix == SUFFIX and entry.is_file():
            found.append((entry.stem, entry))
    return found


def discover() -> dict[str, Path]:
    """Every run of :func:`folders` by name; where two share a name, the first found wins."""
    runs: dict[str, Path] = {}
    for folder in folders():
        for name, path in runs_in(folder):
            runs.setdefault(name, path)
    return runs


__all__ = ["CHECKPOINTS_ENV", "model_name", "split_named", "folders", "runs_in", "discover", "is_run_dir"]
