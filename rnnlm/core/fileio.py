"""Atomic file writes and the rule for files a user names: the one way this package puts a file on disk.

A temp file in the target's directory is written, optionally fsynced, and
renamed over the target, so a crash (or a reader at the wrong moment) sees the
old file or the new one, never half of either; the file gets the umask's mode
whoever wrote the temp file (safetensors recreates it 0600).  Checkpoints, id
caches, the corpus scan, the default corpus, plots, ``config.json`` and
compare's outputs all go through here; only append-only logs (``metrics.jsonl``,
a chat history) append instead.

A file the user names (``--out FILE``, ``--npz``, ``--history``) is checked by
:func:`check_output` first (docs/developer/rules.md, "Files a user names"): it
never replaces the input being read or a checkpoint, replaces an existing file
only when that file carries the mark of the kind this command writes (or with
``--force``, whose one option decorator is ``rnnlm.cli.options.force_option``),
and its parent directory must exist.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rnnlm.core.errors import InputError, RnnlmError

# The mark in the <head> of every HTML page rnnlm writes (export, inspect): an existing file that carries it may
# be replaced by the next page; any other file at an output path is refused unless --force (docs/developer/rules.md).
PAGE_MARK = '<meta name="generator" content="rnnlm">'


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, durable: bool = False,
                 parents: bool = False) -> Path:
    """Call ``write`` on a binary temp file beside ``path``, then rename it to ``path``.

    ``durable`` also fsyncs the file and its directory (checkpoints: a power
    cut right after the rename must not lose the new file).  On any error the
    temp file is removed and the previous file at ``path`` is untouched.
    ``parents`` creates missing parent directories: for rnnlm's own caches
    only; a file the user names never gets them (its missing parent is an
    error, as curl's ``-o`` makes it).
    """
    def write_to(tmp: Path) -> None:
        with tmp.open("wb") as f:
            write(f)

    return atomic_write_to(path, write_to, durable=durable, parents=parents)


def atomic_write_to(path: Path, write_to: Callable[[Path], None], *, durable: bool = False,
                    parents: bool = False) -> Path:
    """:func:`atomic_write` for writers that take a file name (safetensors streams a checkpoint to disk)."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.close(fd)
        write_to(Path(tmp))
        # After the writer, not before: mkstemp makes 0600, and a writer that recreates the file (safetensors) makes
        # its own; every file rnnlm writes, checkpoints included, is as readable as the umask says.
        os.chmod(tmp, 0o666 & ~_umask())
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


def atomic_write_text(path: Path, text: str, *, parents: bool = False) -> Path:
    """:func:`atomic_write` for UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), parents=parents)


@dataclass(frozen=True)
class OutputKind:
    """What a command writes at a path the user names, and how to recognise such a file rnnlm wrote before."""

    what: str                     # for messages: "an HTML page", "an inspect .npz", "a chat history"
    is_ours: Callable[[Path], bool]
    forced: str = "replace it"    # what --force does to a file that is not ours


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _has_page_mark(path: Path) -> bool:
    """A page rnnlm wrote: the mark sits in its ``<head>``, within the first few kilobytes."""
    return PAGE_MARK.encode() in _head(path, 4096)


NPZ_MARK = "rnnlm_inspect"  # the key every inspect .npz holds (a 0-d array with its format version)


def _has_npz_mark(path: Path) -> bool:
    """An ``.npz`` rnnlm wrote: a zip whose members include the mark key's array."""
    try:
        with zipfile.ZipFile(path) as archive:
            return f"{NPZ_MARK}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


HISTORY_MARK = "#rnnlm chat history v1"  # the first line of every history file rnnlm keeps


def _has_history_mark(path: Path) -> bool:
    return _head(path, len(HISTORY_MARK) + 2).split(b"\n", 1)[0].rstrip(b"\r") == HISTORY_MARK.encode()


ONNX_PRODUCER = "rnnlm"  # the producer_name of every ONNX model rnnlm writes (export --format onnx)


def _has_onnx_mark(path: Path) -> bool:
    """An ONNX model rnnlm wrote: its ModelProto's ``producer_name`` (field 2) is :data:`ONNX_PRODUCER`.

    Protobuf's serializers (onnx's included) write a message's fields in
    field-number order, so a model starts with ``ir_version`` (field 1, a
    varint) and then ``producer_name``: the mark is read from the first bytes,
    without the onnx package.  (The format does not promise that order; a
    model of ours written otherwise is only refused without ``--force``.)
    """
    head = _head(path, 64)
    if head[:1] != b"\x08":  # field 1, varint
        return False
    pos = 1
    while pos < len(head) and head[pos] & 0x80:  # the varint's continuation bytes
        pos += 1
    name = ONNX_PRODUCER.encode()
    return head[pos + 1 : pos + 3 + len(name)] == b"\x12" + bytes([len(name)]) + name  # field 2, its length, the name


ONNX_JSON_FORMAT = "rnnlm-onnx"  # the first key of the JSON beside an exported ONNX model: {"format": "rnnlm-onnx", ...}


def _has_onnx_json_mark(path: Path) -> bool:
    return re.match(rb'\{\s*"format"\s*:\s*"' + ONNX_JSON_FORMAT.encode() + rb'"', _head(path, 256)) is not None


PAGE = OutputKind("an HTML page rnnlm wrote", _has_page_mark)
NPZ = OutputKind("an inspect .npz rnnlm wrote", _has_npz_mark)
ONNX = OutputKind("an ONNX model rnnlm wrote", _has_onnx_mark)
ONNX_JSON = OutputKind("the JSON rnnlm writes beside an ONNX model", _has_onnx_json_mark)
HISTORY = OutputKind(f"a chat history rnnlm keeps (its first line is not {HISTORY_MARK!r})", _has_history_mark,
                     "keep its lines and append to it")


def is_checkpoint(path: Path) -> bool:
    """A safetensors file (rnnlm's checkpoints and anyone else's weights): never an output's target.

    The shape safetensors gives every file: an 8-byte little-endian header
    length, then the header's ``{``, the header inside the file.
    """
    head = _head(path, 9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    try:
        return 8 + int.from_bytes(head[:8], "little") <= os.path.getsize(path)
    except OSError:
        return False


def check_output(path: str | Path, kind: OutputKind, *, inputs: Iterable[str | Path] = (), force: bool = False,
                 flag: str = "--out") -> Path:
    """``path`` if a command may write ``kind`` there, else an InputError naming it (exit 2).

    Refused whatever ``force`` says: the input being read (``inputs``), a
    checkpoint, a directory, a missing parent directory.  An existing file is
    replaced only when it carries ``kind``'s mark or with ``force``.  Called by
    the CLI before the work starts (a refusal costs nothing) and again by the
    library's writer, so the Python API keeps the same rule.
    """
    path = Path(path).expanduser()
    parent = path.parent
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(f"{flag} {path}: the directory {parent} {why} (rnnlm creates no directories for a file)")
    if path.is_dir():
        raise InputError(f"{flag} {path} is a directory; give a file name such as {path / 'out'}")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{flag} {path}: the directory {parent} is not writable")
    if not path.exists():
        return path
    for source in inputs:
        if source is not None and Path(source).exists() and os.path.samefile(path, source):
            raise InputError(f"{flag} {path} is the input being read; choose another file")
    if is_checkpoint(path):
        raise InputError(f"{flag} {path} is a checkpoint; rnnlm never writes over one, not even with --force")
    if not (force or kind.is_ours(path)):
        raise InputError(f"{flag} {path} exists and is not {kind.what}; choose another file or pass --force to "
                         f"{kind.forced}")
    return path


def write_output(path: str | Path, data: bytes | Callable[[BinaryIO], None], kind: OutputKind, *,
                 inputs: Iterable[str | Path] = (), force: bool = False, flag: str = "--out") -> Path:
    """:func:`check_output`, then :func:`atomic_write`; an OS error becomes one line (exit 2, or 1 for a full disk)."""
    path = check_output(path, kind, inputs=inputs, force=force, flag=flag)
    write = data if callable(data) else (lambda f: f.write(data))
    try:
        return atomic_write(path, write)
    except OSError as exc:
        error = RnnlmError if exc.errno == errno.ENOSPC else InputError  # a full disk is no fault of the input
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None


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
