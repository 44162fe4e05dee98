"""Text ↔ ids: characters (any Unicode, the default) or sentencepiece subwords.

Both tokenizers share one small interface — ``kind``, ``vocab_size``,
``unk_id``, ``dtype``, ``encode``, ``decode``, ``char_lengths``,
``unknown_chars``, ``to_dict`` / ``tensors`` — and are rebuilt from a
checkpoint by :func:`rnnlm.data.tokenizers.tokenizer_from_state`, so sampling never needs the corpus.
The sentencepiece one lives in :mod:`rnnlm.data.tokenizers.subword`.

Char encoding is vectorised: ``str.encode('utf-32-le')`` gives the code points
as a numpy array in C, and one lookup table maps them to ids — no Python loop
over characters, which is what lets a 100 MB corpus encode in about a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnlm.core.errors import InputError

UNK = "<unk>"
UNK_DECODED = "\ufffd"


def smallest_dtype(vocab_size: int) -> np.dtype:
    """uint8/uint16/uint32: ids take 1–4 bytes, which matters for 100 MB corpora in memory."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise InputError(f"vocabulary of {vocab_size} symbols is too large")


def codepoints(text: str) -> np.ndarray:
    """Unicode code points of ``text``, computed in C: uint8 for ASCII text (a plain copy, a quarter
    of the memory — the common case for English corpora), else uint32.

    ``surrogatepass`` lets a lone surrogate (possible in a command-line prompt)
    through as a code point, so it is reported as an unknown character instead
    of crashing the encoder.
    """
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def describe_chars(chars: Sequence[str], limit: int = 10) -> str:
    """``'ü' (U+00FC), '🙂' (U+1F642)``: repr shows invisible characters, U+ tells look-alikes apart."""
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in list(chars)[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return shown + more


class CharTokenizer:
    """One id per Unicode code point seen in the corpus (sorted), plus ``<unk>`` (id 0) when rare chars are pooled.

    ``unknown_count`` / ``rare_chars`` say how many corpus characters
    ``from_counts`` pooled into ``<unk>`` and which ones, so the caller can
    report it.
    """

    kind = "char"

    def __init__(self, chars: str, unk: bool = False, min_char_count: int = 0) -> None:
        self.chars = chars
        self.unk_id: int | None = 0 if unk else None
        self.min_char_count = min_char_count
        self.vocab_size = len(chars) + (1 if unk else 0)
        self.dtype = smallest_dtype(self.vocab_size)
        self.unknown_count = 0
        self.rare_chars = ""
        points = codepoints(chars)
        offset = 1 if unk else 0
        # The table has one spare id value (its dtype's max) meaning "not in the vocabulary";
        # its last slot holds it too, so out-of-range code points clip onto it.
        table_dtype = smallest_dtype(self.vocab_size + 1)
        self._missing = np.iinfo(table_dtype).max
        self._table = np.full(int(points.max(initial=0)) + 2, self._missing, dtype=table_dtype)
        self._table[points] = np.arange(offset, offset + len(points))
        self._decode_table = np.concatenate([np.full(offset, ord(UNK_DECODED), np.uint32), points.astype(np.uint32)])

    @classmethod
    def from_counts(cls, codepoints: np.ndarray, counts: np.ndarray, min_char_count: int = 0) -> CharTokenizer:
        """Vocabulary from per-code-point counts (what :func:`rnnlm.data.corpus.scan_corpus` gathers).

        Characters seen fewer than ``min_char_count`` times pool into ``<unk>``,
        so a huge corpus with a few stray symbols does not spend output rows on them.
        """
        codepoints, counts = np.asarray(codepoints), np.asarray(counts)
        keep = counts >= max(min_char_count, 1)
        rare = (counts > 0) & ~keep
        chars = "".join(map(chr, np.sort(codepoints[keep]).tolist()))
        tok = cls(chars, unk=bool(rare.any()), min_char_count=min_char_count)
        tok.unknown_count = int(counts[rare].sum())
        tok.rare_chars = "".join(map(chr, np.sort(codepoints[rare]).tolist()))
        return tok

    @classmethod
    def from_text(cls, text: str, min_char_count: int = 0) -> CharTokenizer:
        points, counts = np.unique(codepoints(text), return_counts=True)
        return cls.from_counts(points, counts, min_char_count)

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of ``text`` outside the vocabulary, sorted.

        So callers can name them in a warning before mapping them to ``<unk>``.
        """
        points = codepoints(text)
        missing = np.take(self._table, points, mode="clip") == self._missing
        return [chr(p) for p in np.unique(points[missing]).tolist()]

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Ids in the smallest dtype; ``unknown="unk"`` maps out-of-vocabulary characters to ``<unk>``."""
        return self.encode_points(codepoints(text), unknown)

    def encode_points(self, points: np.ndarray, unknown: str = "error") -> np.ndarray:
        """Ids of code points already in an array (the chunked corpus encoder's entry point)."""
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', not {unknown!r}")
        ids = np.take(self._table, points, mode="clip")
        bad = ids == self._missing
        if bad.any():
            missing = [chr(p) for p in np.unique(points[bad]).tolist()]
            if unknown == "error" or self.unk_id is None:
                hint = "; this vocabulary has no <unk> (see --min-char-count)" if unknown == "unk" else ""
                raise InputError(f"characters not in the vocabulary: {describe_chars(missing)}{hint}")
            ids[bad] = self.unk_id
        return ids if ids.dtype == self.dtype else ids.astype(self.dtype)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of ``ids``; ``<unk>`` becomes U+FFFD, the standard replacement character."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise InputError(f"id out of range for a vocabulary of {self.vocab_size}")
        return self._decode_table[ids].tobytes().decode("utf-32-le", "surrogatepass")

    def char_lengths(self) -> None:
        """Characters per id: one each, signalled by ``None`` (evaluation then counts tokens)."""
        return None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars, "unk": self.unk_id is not None,
                "min_char_count": self.min_char_count, "vocab_size": self.vocab_size}

    def tensors(self) -> dict[str, np.ndarray]:
        """Nothing beside the header: the characters are a JSON string."""
        return {}


def _utf8_need(byte: int) -> int:
    """Length of the UTF-8 sequence a lead byte starts (0 for anything that cannot start one)."""
    if 0xC2 <= byte < 0xE0:
        return 2
    if 0xE0 <= byte < 0xF0:
        return 3
    return 4 if 0xF0 <= byte < 0xF5 else 0


class StreamDecoder:
    """Incremental decoding for streaming output: ``push`` returns only text that is complete.

    Byte-fallback pieces spell a character one UTF-8 byte at a time; the ids of
    an unfinished character (a lead byte and fewer continuation bytes than it
    announces) are held back until it completes.  Every other boundary is safe
    to cut at, so the pushed pieces plus ``flush()`` equal ``decode(all ids)``.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._byte_values = getattr(tokenizer, "byte_values", None)  # None for char: nothing to hold
        self._pending: list[int] = []

    def _held(self) -> int:
        values, pending = self._byte_values, self._pending
        trailing = 0
        while trailing < min(3, len(pending)) and 0x80 <= values[pending[-1 - trailing]] < 0xC0:
            trailing += 1
        if trailing == len(pending):
            return 0
        need = _utf8_need(int(values[pending[-1 - trailing]]))
        return trailing + 1 if need > trailing + 1 else 0

    def push(self, ids: Sequence[int] | np.ndarray) -> str:
        if self._byte_values is None:
            return self.tokenizer.decode(ids)
        self._pending.extend(np.asarray(ids).reshape(-1).tolist())
        cut = len(self._pending) - self._held()
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return self.tokenizer.decode(ready) if ready else ""

    def flush(self) -> str:
        """Whatever is held, decoded as is (an unfinished character becomes U+FFFD)."""
        ready, self._pending = self._pending, []
        return self.tokenizer.decode(ready) if ready else ""


__all__ = ["CharTokenizer", "StreamDecoder", "smallest_dtype", "codepoints", "describe_chars"]
