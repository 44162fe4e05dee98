"""Atomic file writes: the one way this package puts a file on disk.

A temp file in the target's directory is written, optionally fsynced, and
renamed over the target, so a crash (or a reader at the wrong moment) sees the
old file or the new one, never half of either.  Checkpoints, id caches, the
corpus scan, the default corpus, plots and ``config.json`` all go through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, durable: bool = False) -> Path:
    """Call ``write`` on a binary temp file beside ``path``, then rename it to ``path``.

    ``durable`` also fsyncs the file and its directory (checkpoints: a power
    cut right after the rename must not lose the new file).  On any error the
    temp file is removed and the previous file at ``path`` is untouched.
    """
    def write_to(tmp: Path) -> None:
        with tmp.open("wb") as f:
            write(f)

    return atomic_write_to(path, write_to, durable=durable)


def atomic_write_to(path: Path, write_to: Callable[[Path], None], *, durable: bool = False) -> Path:
    """:func:`atomic_write` for writers that take a file name (safetensors streams a checkpoint to disk)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a page or checkpoint is as readable as any file
        os.close(fd)
        write_to(Path(tmp))
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write` for UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def _umask() -> int:
    """The process's umask (read by setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
