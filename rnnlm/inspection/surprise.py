"""Surprise: bits per character from the model and from a character n-gram, and where they differ.

The model predicts token t from the state after token t−1 (the first token
from the warm-up's last state), so a character's bits say how unexpected it
was.  Subword tokens spread their bits evenly over the characters they spell
(so the sum stays the token's bits); a byte piece that spells no whole
character adds its bits to the character before.  The n-gram is the
interpolated Kneser-Ney model ``compare`` reports, fitted here on the end of
the run's training split.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rnnlm.evaluation.ngram import KneserNey
from rnnlm.inspection.features import bracket_depth, inside_quotes, position_in_word
from rnnlm.data.tokenizers.char import CharTokenizer

TOP = 5
NGRAM_ORDER = 5
NGRAM_TRAIN_CHARS = 3_000_000  # "a few MB" of the training split: the n-gram fits in seconds


def token_surprise(logits: torch.Tensor, first: torch.Tensor, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bits of each token (T,), and the top-5 token ids and probabilities (T, 5) that predicted it.

    ``logits`` (T, V) are the model's outputs after each token, ``first`` (V,)
    the output before the first one.
    """
    pred = torch.cat([first[None], logits[:-1]]).float()  # (T, V): what was expected at each position
    logp = torch.log_softmax(pred, dim=-1)
    bits = -logp.gather(1, ids.long()[:, None])[:, 0] / math.log(2)
    top_logp, top_ids = logp.topk(min(TOP, logp.shape[1]), dim=-1)
    return bits.numpy().astype(np.float64), top_ids.numpy(), top_logp.exp().numpy()


def char_layout(ids: np.ndarray, token_chars: np.ndarray | None, n_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """(token covering each character (n_chars,), characters each token spells (T,)).

    ``token_chars`` is the tokenizer's ``char_lengths()`` (None: one each).
    """
    lens = np.ones(len(ids), dtype=np.int64) if token_chars is None else np.asarray(token_chars)[ids].astype(np.int64)
    assert lens.sum() == n_chars, "the tokens must spell the text exactly"
    return np.repeat(np.arange(len(ids)), lens), lens


def spread_bits(bits: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Per-character bits from per-token bits: shared evenly, zero-character tokens onto the character before."""
    out = np.repeat(bits / np.maximum(lens, 1), lens)
    empty = np.flatnonzero(lens == 0)
    if len(empty):
        ends = np.cumsum(lens)
        np.add.at(out, np.maximum(ends[empty] - 1, 0), bits[empty])
    return out


def ngram_bits(train_text: str, before: str, text: str, order: int = NGRAM_ORDER) -> tuple[np.ndarray, str]:
    """Bits per character of ``text`` under a Kneser-Ney n-gram fitted on ``train_text``.

    ``before`` (the text preceding ``text``) gives the first characters their
    history.  The order falls back below 5 where the vocabulary is too large
    for its n-grams to fit 64-bit keys.
    """
    tok = CharTokenizer.from_text(train_text + before + text)  # every character known; unseen ones keep 1/V mass
    vocab = tok.vocab_size
    while order > 1 and vocab**order >= 2**62:
        order -= 1
    model = KneserNey(tok.encode(train_text).astype(np.int64), vocab, order)
    context = tok.encode(before[len(before) - (order - 1) :] if order > 1 else "").astype(np.int64)
    targets = tok.encode(text).astype(np.int64)
    padded = np.concatenate([np.zeros(order - 1 - len(context), dtype=np.int64), context, targets])
    history = np.lib.stride_tricks.sliding_window_view(padded, order)[:, : order - 1]  # (N, order−1)
    p = model.probabilities(history, targets)
    return -np.log2(p), f"{order}-gram Kneser-Ney"


def character_classes(text: str) -> dict[str, np.ndarray]:
    """Masks of the character kinds where a recurrent model is expected to beat an n-gram, or not."""
    points = np.array([ord(c) for c in text], dtype=np.int64)
    quotes = inside_quotes(text)
    closes_quote = np.zeros(len(text), dtype=bool)
    closes_quote[1:] = (quotes[:-1] > 0) & (quotes[1:] == 0)
    depth = bracket_depth(text)
    closes_bracket = np.zeros(len(text), dtype=bool)
    closes_bracket[1:] = depth[1:] < depth[:-1]
    word = position_in_word(text)
    return {
        "closing brackets": closes_bracket,
        "closing quotes": closes_quote,
        "line ends": points == ord("\n"),
        "first letter of a word": word == 1,
        "letters 2–5 of a word": (word >= 2) & (word <= 5),
        "letters 6+ of long words": word >= 6,
        "spaces": points == ord(" "),
        "punctuation": np.array([not c.isalnum() and not c.isspace() for c in text], dtype=bool),
        "upper case": np.array([c.isupper() for c in text], dtype=bool),
    }


def wins_and_losses(text: str, model_bits: np.ndarray, baseline_bits: np.ndarray) -> list[dict]:
    """Mean bits of model and n-gram per character kind, sorted by how much the model saves (n-gram − model)."""
    rows = []
    for name, mask in character_classes(text).items():
        if mask.any():
            m, b = float(model_bits[mask].mean()), float(baseline_bits[mask].mean())
            rows.append({"kind": name, "chars": int(mask.sum()), "model_bits": m, "ngram_bits": b, "saved_bits": b - m})
    return sorted(rows, key=lambda r: -r["saved_bits"])


__all__ = ["token_surprise", "char_layout", "spread_bits", "ngram_bits", "wins_and_losses", "TOP"]
