"""Text ↔ ids: characters (any Unicode, the default) or sentencepiece subwords.

Both tokenizers share one small interface — ``kind``, ``vocab_size``,
``unk_id``, ``encode``, ``decode``, ``char_lengths``, ``unknown_chars``,
``to_dict`` / ``tensors`` — and are rebuilt from a checkpoint by
:func:`tokenizer_from_state`, so sampling never needs the corpus.

Char encoding is vectorised: ``str.encode('utf-32-le')`` gives the code points
as a numpy array in C, and one lookup table maps them to ids — no Python loop
over characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InputError

UNK = "<unk>"
UNK_DECODED = "\ufffd"


def smallest_dtype(vocab_size: int) -> np.dtype:
    """uint8/uint16/uint32: ids take 1–4 bytes, which matters for 100 MB corpora in memory."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise InputError(f"vocabulary of {vocab_size} symbols is too large")


def codepoints(text: str) -> np.ndarray:
    """Unicode code points of ``text`` as uint32, computed in C."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def describe_chars(chars: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in list(chars)[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return shown + more


class CharTokenizer:
    """One id per Unicode code point seen in the corpus (sorted), plus ``<unk>`` when rare chars are pooled."""

    kind = "char"

    def __init__(self, chars: str, unk: bool = False, min_char_count: int = 0) -> None:
        self.chars = chars
        self.unk_id: int | None = 0 if unk else None
        self.min_char_count = min_char_count
        self.vocab_size = len(chars) + (1 if unk else 0)
        self._offset = 1 if unk else 0
        points = codepoints(chars).astype(np.int64)
        self._points = points  # id - offset → code point
        self._table = np.full(int(points.max(initial=0)) + 2, -1, dtype=np.int64)
        self._table[points] = np.arange(len(points)) + self._offset
        self.dtype = smallest_dtype(self.vocab_size)
        self.unknown_count = 0

    @classmethod
    def from_counts(cls, points: np.ndarray, counts: np.ndarray, min_char_count: int = 0) -> CharTokenizer:
        """Vocabulary from per-code-point counts; characters seen fewer than ``min_char_count`` times pool into ``<unk>``."""
        keep = counts >= max(min_char_count, 1)
        rare = int(counts[(counts > 0) & ~keep].sum())
        chars = "".join(map(chr, np.sort(points[keep]).tolist()))
        tok = cls(chars, unk=min_char_count > 0 and rare > 0, min_char_count=min_char_count)
        tok.unknown_count = rare
        return tok

    @classmethod
    def from_text(cls, text: str, min_char_count: int = 0) -> CharTokenizer:
        points, counts = np.unique(codepoints(text), return_counts=True)
        return cls.from_counts(points, counts, min_char_count)

    def _lookup(self, points: np.ndarray) -> np.ndarray:
        ids = np.full(points.shape, -1, dtype=np.int64)
        inside = points < len(self._table)
        ids[inside] = self._table[points[inside]]
        return ids

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of ``text`` outside the vocabulary, sorted."""
        points = codepoints(text)
        return [chr(p) for p in np.unique(points[self._lookup(points) < 0]).tolist()]

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Ids in the smallest dtype; ``unknown="unk"`` maps out-of-vocabulary characters to ``<unk>``."""
        return self.encode_points(codepoints(text), unknown)

    def encode_points(self, points: np.ndarray, unknown: str = "error") -> np.ndarray:
        ids = self._lookup(points)
        bad = ids < 0
        if bad.any():
            if unknown == "unk" and self.unk_id is not None:
                ids[bad] = self.unk_id
            else:
                missing = [chr(p) for p in np.unique(points[bad]).tolist()]
                raise InputError(f"characters not in the vocabulary: {describe_chars(missing)}")
        return ids.astype(self.dtype)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise InputError(f"id out of range for a vocabulary of {self.vocab_size}")
        points = np.full(ids.shape, ord(UNK_DECODED), dtype=np.uint32)
        known = ids >= self._offset
        points[known] = self._points[ids[known] - self._offset]
        return points.tobytes().decode("utf-32-le")

    def char_lengths(self) -> None:
        """Characters per id: one each, signalled by ``None`` (evaluation counts tokens)."""
        return None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars, "unk": self.unk_id is not None,
                "min_char_count": self.min_char_count, "vocab_size": self.vocab_size}

    def tensors(self) -> dict[str, np.ndarray]:
        return {}


def tokenizer_from_state(meta: Mapping, tensors: Mapping) -> CharTokenizer:
    """Rebuild the tokenizer a checkpoint stores (``to_dict()`` in the header, ``tensors()`` beside the weights)."""
    kind = meta.get("kind")
    if kind == "char":
        return CharTokenizer(meta["chars"], unk=bool(meta.get("unk")), min_char_count=int(meta.get("min_char_count", 0)))
    if kind in ("bpe", "unigram"):
        from .subword import SentencePieceTokenizer

        data = tensors.get("tokenizer.spm")
        if data is None:
            raise InputError("corrupted checkpoint: sentencepiece model missing")
        raw = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
        return SentencePieceTokenizer(raw.astype(np.uint8).tobytes(), kind, meta["newline"])
    raise InputError(f"unknown tokenizer kind {kind!r} in checkpoint")


class StreamDecoder:
    """Incremental decoding for streaming output: emits only text that is complete."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.pending: list[int] = []

    def push(self, ids: Sequence[int]) -> str:
        if self.tokenizer.kind == "char":
            return self.tokenizer.decode(ids)
        self.pending.extend(int(i) for i in ids)
        text = self.tokenizer.decode(self.pending)
        if text.endswith(UNK_DECODED) and self.tokenizer.is_byte(self.pending[-1]):
            return ""  # a multi-byte character still arriving through byte-fallback pieces
        self.pending.clear()
        return text

    def flush(self) -> str:
        text = self.tokenizer.decode(self.pending) if self.pending else ""
        self.pending.clear()
        return text


__all__ = ["CharTokenizer", "StreamDecoder", "tokenizer_from_state", "smallest_dtype", "codepoints"]
