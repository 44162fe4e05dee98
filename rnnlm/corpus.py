"""Reading corpora: validation with useful messages, and fast chunked char encoding with a cache.

Files are streamed in chunks (never whole as a Python ``str``), decoded with an
incremental UTF-8 decoder (so a character split across chunks is fine and an
error's byte offset is exact), counted with ``np.bincount`` and mapped to ids
with one table lookup.  Encoded ids are cached as ``.npy`` and memory-mapped,
keyed by the files' sha256 and the tokenizer, so a second run skips encoding.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .tokenizer import CharTokenizer, codepoints

CHUNK_BYTES = 1 << 24
MAX_CODEPOINT = 0x110000


@dataclass(frozen=True)
class CorpusInfo:
    """What one streaming pass learns: sizes, hashes, length and per-code-point counts."""

    paths: tuple[str, ...]
    sizes: tuple[int, ...]
    sha256: tuple[str, ...]
    num_chars: int
    codepoints: np.ndarray
    counts: np.ndarray

    def to_dict(self) -> dict:
        return {"paths": list(self.paths), "names": [Path(p).name for p in self.paths],
                "sizes": list(self.sizes), "sha256": list(self.sha256), "chars": self.num_chars}


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass its files, e.g. {path}/*.txt")
    if not path.exists():
        raise InputError(f"corpus file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"corpus file is empty: {path}")


def iter_text(paths: Sequence[Path], chunk_bytes: int = CHUNK_BYTES, hashes: list | None = None) -> Iterator[str]:
    """Validated text of the joined files, in chunks; files are joined with one newline."""
    for index, path in enumerate(paths):
        _check_path(path)
        decoder = codecs.getincrementaldecoder("utf-8")()
        digest = hashlib.sha256()
        offset = 0
        if index:
            yield "\n"
        with path.open("rb") as f:
            while block := f.read(chunk_bytes):
                digest.update(block)
                nul = block.find(b"\0")
                if nul >= 0:
                    raise InputError(f"{path} looks binary (NUL byte at offset {offset + nul}); rnnlm trains on UTF-8 text")
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError as exc:
                    bad = offset - len(decoder.getstate()[0]) + exc.start
                    raise InputError(f"{path} is not valid UTF-8 at byte offset {max(bad, 0)}") from None
                offset += len(block)
                yield text
            try:
                yield decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise InputError(f"{path} is not valid UTF-8 at byte offset {offset - len(decoder.getstate()[0])} (truncated character at the end)") from None
        if hashes is not None:
            hashes.append(digest.hexdigest())


def scan_corpus(paths: Sequence[str | Path], chunk_bytes: int = CHUNK_BYTES) -> CorpusInfo:
    """One streaming pass: validate every file and count characters."""
    paths = [Path(p) for p in paths]
    for path in paths:
        _check_path(path)
    hashes: list[str] = []
    counts = np.zeros(MAX_CODEPOINT, dtype=np.int64)
    for text in iter_text(paths, chunk_bytes, hashes):
        if text:
            points = codepoints(text)
            counts[: int(points.max()) + 1] += np.bincount(points)
    present = np.flatnonzero(counts)
    return CorpusInfo(tuple(str(p) for p in paths), tuple(p.stat().st_size for p in paths), tuple(hashes),
                      int(counts.sum()), present.astype(np.uint32), counts[present])


def read_text(paths: Sequence[str | Path]) -> str:
    """The whole validated text (sentencepiece and evaluation files need it as one string)."""
    return "".join(iter_text([Path(p) for p in paths]))


def _cache_key(info: CorpusInfo, tokenizer: CharTokenizer) -> str:
    blob = json.dumps([info.sha256, info.sizes, tokenizer.to_dict()], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def encode_char_corpus(info: CorpusInfo, tokenizer: CharTokenizer, cache_dir: Path | None = None,
                       chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Ids of the whole corpus in the tokenizer's dtype; cached and memory-mapped when ``cache_dir`` is given."""
    cached = Path(cache_dir) / f"ids-{_cache_key(info, tokenizer)}.npy" if cache_dir is not None else None
    if cached is not None and cached.exists():
        ids = np.load(cached, mmap_mode="r")
        if len(ids) == info.num_chars and ids.dtype == tokenizer.dtype:
            return ids
    out = np.empty(info.num_chars, dtype=tokenizer.dtype)
    pos = 0
    unknown = "unk" if tokenizer.unk_id is not None else "error"
    for text in iter_text([Path(p) for p in info.paths], chunk_bytes):
        ids = tokenizer.encode_points(codepoints(text), unknown)
        out[pos : pos + len(ids)] = ids
        pos += len(ids)
    if pos != info.num_chars:
        raise InputError("the corpus changed while it was being read; run again")
    if cached is None:
        return out
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, out)
    os.replace(tmp, cached)
    return np.load(cached, mmap_mode="r")
