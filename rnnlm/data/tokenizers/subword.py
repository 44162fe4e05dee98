"""Sentencepiece subwords (``--tokenizer bpe|unigram``), trained in memory, stored in the checkpoint.

Settings follow docs/developer/rules.md so any text round-trips exactly: identity
normalisation, no whitespace folding, no dummy prefix, byte fallback for unseen
characters, full character coverage.  Sentencepiece reads its input line by
line, so a newline is stored as a user-defined piece (U+2424 '␤', or a
private-use character when the corpus has that one).

Two characters would still be ambiguous inside sentencepiece: that newline
symbol, and U+2581 '▁', which it uses internally for a space.  Where they occur
literally in the text, they are encoded as their byte-fallback pieces, which
decode back to the literal character.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import sentencepiece as spm

from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers.char import smallest_dtype

SPACE_SYMBOL = "\u2581"
NEWLINE_SYMBOL = "\u2424"
PRIVATE_USE = range(0xE000, 0xF900)
MAX_LINE_CHARS = 4096  # longer lines are cut for training: sentencepiece skips sentences over max_sentence_length
_BYTE_PIECE = re.compile(r"^<0x([0-9A-F]{2})>$")


def _explain(message: str, kind: str, vocab_size: int) -> str:
    """Sentencepiece's trainer errors, turned into what to change."""
    small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if small:
        return (f"vocab size {vocab_size} is too small for this corpus; it needs at least {small.group(2)} "
                "(its characters plus 256 byte-fallback pieces)")
    large = re.search(r"Please set it to a value <= (\d+)", message)
    if large:
        return f"vocab size {vocab_size} is too large for this corpus; try ≤ {large.group(1)}"
    return f"sentencepiece could not train a {kind} vocabulary of {vocab_size}: {message.splitlines()[0]}"


def _pick_newline(text: str) -> str:
    """U+2424 unless the corpus uses it, else the first private-use character it does not use."""
    for symbol in itertools.chain([NEWLINE_SYMBOL], map(chr, PRIVATE_USE)):
        if symbol not in text:
            return symbol
    raise InputError("the corpus uses every private-use character; use --tokenizer char")


def _sentences(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        for start in range(0, len(line), MAX_LINE_CHARS):
            yield line[start : start + MAX_LINE_CHARS]


class SentencePieceTokenizer:
    """A sentencepiece model plus the newline symbol it was trained with."""

    unk_id = None  # byte fallback spells every character: nothing is unknown

    def __init__(self, model_bytes: bytes, kind: str, newline: str) -> None:
        self.model_bytes, self.kind, self.newline = model_bytes, kind, newline
        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        self.vocab_size = self.sp.get_piece_size()
        self.dtype = smallest_dtype(self.vocab_size)
        self.newline_id = self.sp.piece_to_id(newline)
        pieces = [self.sp.id_to_piece(i) for i in range(self.vocab_size)]
        matches = [_BYTE_PIECE.match(p) for p in pieces]
        self.byte_values = np.array([int(m.group(1), 16) if m else -1 for m in matches], dtype=np.int16)
        self._char_lengths = np.array([self._piece_chars(i, p) for i, p in enumerate(pieces)], dtype=np.int64)
        # Literal newline symbols and '▁' travel as byte pieces; see the module docstring.
        self._escapes = {"\n": [self.newline_id]}
        for char in (newline, SPACE_SYMBOL):
            self._escapes[char] = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in char.encode()]
        self._splitter = re.compile("(" + "|".join(map(re.escape, self._escapes)) + ")")

    def _piece_chars(self, index: int, piece: str) -> int:
        """Characters a piece spells; a byte piece counts 1 if it starts a UTF-8 character, else 0.

        So summing over any id sequence gives exactly the characters of its
        decoded text — the denominator of bits per character.
        """
        if self.sp.is_control(index) or self.sp.is_unknown(index):
            return 0
        value = self.byte_values[index]
        if value >= 0:
            return 0 if 0x80 <= value < 0xC0 else 1
        return len(piece)

    @classmethod
    def train(cls, text: str, kind: str, vocab_size: int) -> SentencePieceTokenizer:
        """Train on ``text`` (the training split only: no validation leakage), in memory and quietly."""
        if kind not in ("bpe", "unigram"):
            raise InputError(f"sentencepiece kind must be 'bpe' or 'unigram', not {kind!r}")
        newline = _pick_newline(text)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=_sentences(text), model_writer=model, model_type=kind, vocab_size=vocab_size,
                normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
                byte_fallback=True, character_coverage=1.0, allow_whitespace_only_pieces=True,
                user_defined_symbols=[newline], max_sentence_length=4 * MAX_LINE_CHARS,
                # A sample of 2M sentences keeps training memory bounded on 100 MB corpora.
                input_sentence_size=2_000_000, shuffle_input_sentence=True,
                bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2, num_threads=os.cpu_count() or 1,
            )
        except RuntimeError as exc:
            raise InputError(_explain(str(exc), kind, vocab_size)) from None
        return cls(model.getvalue(), kind, newline)

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Ids in the smallest dtype; one batched sentencepiece call for all the lines.

        ``unknown`` is accepted for interface parity: byte fallback never meets one.
        """
        parts = self._splitter.split(text)  # text, separator, text, separator, ..., text
        encoded = self.sp.encode(parts[0::2])
        escapes = [self._escapes[sep] for sep in parts[1::2]]
        pieces = itertools.chain.from_iterable(itertools.chain.from_iterable(zip(encoded, escapes + [[]])))
        return np.fromiter(pieces, dtype=self.dtype)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of ``ids``: decoded line by line in one batched call, joined with real newlines."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise InputError(f"id out of range for a vocabulary of {self.vocab_size}")
        lines = np.split(ids, np.flatnonzero(ids == self.newline_id))
        return "\n".join(self.sp.decode([lines[0].tolist()] + [line[1:].tolist() for line in lines[1:]]))

    def is_byte(self, token: int) -> bool:
        return bool(self.byte_values[token] >= 0)

    def char_lengths(self) -> np.ndarray:
        return self._char_lengths

    def unknown_chars(self, text: str) -> list[str]:
        """Byte fallback represents every character, so nothing is unknown."""
        return []

    def to_dict(self) -> dict:
        return {"kind": self.kind, "vocab_size": self.vocab_size, "newline": self.newline, "unk": False}

    def tensors(self) -> dict[str, np.ndarray]:
        """The model bytes as a writable uint8 array (torch warns on read-only buffers)."""
        return {"tokenizer.spm": np.frombuffer(self.model_bytes, dtype=np.uint8).copy()}
