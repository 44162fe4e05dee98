"""Sentencepiece subwords (``--tokenizer bpe|unigram``), trained in memory, stored in the checkpoint.

Settings follow CONVENTIONS.md so any text round-trips exactly: identity
normalisation, no whitespace folding, no dummy prefix, byte fallback for unseen
characters, full character coverage.  Sentencepiece reads its input line by
line, so newlines are swapped for a symbol absent from the corpus (U+2424 '␤'
unless the corpus has it) made a user-defined piece, and swapped back after
decoding.
"""

from __future__ import annotations

import io
import re

import numpy as np
import sentencepiece as spm

from .errors import InputError
from .tokenizer import smallest_dtype

NEWLINE_CANDIDATES = ["\u2424", "\ue000", "\ue001", "\ue002", "\uf8ff"]
_BYTE_PIECE = re.compile(r"^<0x([0-9A-F]{2})>$")


def _explain(message: str, kind: str, vocab_size: int) -> str:
    """Sentencepiece's trainer errors, turned into what to change."""
    small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if small:
        return (f"--vocab-size {vocab_size} is too small for this corpus: it needs at least {small.group(2)} "
                "(its characters plus 256 byte-fallback pieces)")
    large = re.search(r"Please set it to a value <= (\d+)", message)
    if large:
        return f"--vocab-size {vocab_size} is too large for this corpus; try at most {large.group(1)}"
    return f"sentencepiece could not train a {kind} vocabulary of {vocab_size}: {message.splitlines()[0]}"


class SentencePieceTokenizer:
    """A sentencepiece model plus the newline symbol it was trained with."""

    unk_id = None

    def __init__(self, model_bytes: bytes, kind: str, newline: str) -> None:
        self.model_bytes, self.kind, self.newline = model_bytes, kind, newline
        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        self.vocab_size = self.sp.get_piece_size()
        self.dtype = smallest_dtype(self.vocab_size)
        pieces = [self.sp.id_to_piece(i) for i in range(self.vocab_size)]
        self._bytes = np.array([bool(_BYTE_PIECE.match(p)) for p in pieces])
        self._char_lengths = np.array([self._piece_chars(i, p) for i, p in enumerate(pieces)], dtype=np.int64)

    def _piece_chars(self, index: int, piece: str) -> int:
        """Characters a piece spells; a byte piece counts 1 if it starts a UTF-8 character, else 0.

        So summing over any id sequence gives exactly the characters of its
        decoded text — the denominator of bits per character.
        """
        if self.sp.is_control(index) or self.sp.is_unknown(index):
            return 0
        match = _BYTE_PIECE.match(piece)
        if match:
            return 0 if 0x80 <= int(match.group(1), 16) < 0xC0 else 1
        return len(piece)

    @classmethod
    def train(cls, text: str, kind: str, vocab_size: int) -> SentencePieceTokenizer:
        """Train on ``text`` (the training split only: no validation leakage)."""
        newline = next((c for c in NEWLINE_CANDIDATES if c not in text), None)
        if newline is None:
            raise InputError("the corpus uses every reserved newline symbol; use --tokenizer char")
        lines = [line for line in text.split("\n") if line]
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=model, model_type=kind, vocab_size=vocab_size,
                normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
                byte_fallback=True, character_coverage=1.0, allow_whitespace_only_pieces=True,
                user_defined_symbols=[newline], split_digits=False, max_sentence_length=1 << 16,
                hard_vocab_limit=False, bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2,
                num_threads=2, train_extremely_large_corpus=False,
            )
        except RuntimeError as exc:
            raise InputError(_explain(str(exc), kind, vocab_size)) from None
        return cls(model.getvalue(), kind, newline)

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        lines = text.split("\n")
        pieces = self.sp.encode(lines)
        nl = self.sp.piece_to_id(self.newline)
        out: list[int] = []
        for i, ids in enumerate(pieces):
            if i:
                out.append(nl)
            out.extend(ids)
        return np.asarray(out, dtype=self.dtype)

    def decode(self, ids) -> str:
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        return self.sp.decode(ids).replace(self.newline, "\n")

    def is_byte(self, token: int) -> bool:
        return bool(self._bytes[token])

    def char_lengths(self) -> np.ndarray:
        return self._char_lengths

    def unknown_chars(self, text: str) -> list[str]:
        """Byte fallback represents every character, so nothing is unknown."""
        return []

    def to_dict(self) -> dict:
        return {"kind": self.kind, "vocab_size": self.vocab_size, "newline": self.newline, "unk": False}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"tokenizer.spm": np.frombuffer(self.model_bytes, dtype=np.uint8)}
