"""Tokenizers: characters (any Unicode; the default) in ``char``, sentencepiece subwords in ``subword``.

Both share one interface (``kind``, ``vocab_size``, ``encode``, ``decode``, ``to_dict`` / ``tensors``, …);
:func:`tokenizer_from_state` rebuilds either from a checkpoint, here above both so neither imports the other's
module back.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers.char import CharTokenizer


def tokenizer_from_state(meta: Mapping, tensors: Mapping) -> CharTokenizer:
    """Rebuild the tokenizer a checkpoint stores (``to_dict()`` in the header, ``tensors()`` beside the weights)."""
    kind = meta.get("kind")
    if kind == "char":
        if not isinstance(meta.get("chars"), str):
            raise InputError("corrupted checkpoint: the char tokenizer has no character list")
        return CharTokenizer(meta["chars"], unk=bool(meta.get("unk")),
                             min_char_count=int(meta.get("min_char_count", 0)))
    if kind in ("bpe", "unigram"):
        from rnnlm.data.tokenizers.subword import SentencePieceTokenizer  # sentencepiece only when used

        data = tensors.get("tokenizer.spm")
        if data is None or "newline" not in meta:
            raise InputError("corrupted checkpoint: the sentencepiece model or its newline symbol is missing")
        raw = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
        return SentencePieceTokenizer(raw.astype(np.uint8).tobytes(), kind, meta["newline"])
    raise InputError(f"unknown tokenizer kind {kind!r} in checkpoint")


__all__ = ["tokenizer_from_state"]
