"""What a number means: unigram and interpolated Kneser-Ney character n-gram baselines.

"Is 2.0 bits per character good?" is the first question about a char-RNN.
These two models, fitted with numpy on the same training split and scored on
the same text, sit beside the RNNs in ``rnnlm compare``'s table.  Everything is
vectorised: n-grams become int64 keys (base-V digits), counted with
``np.unique`` and looked up with ``np.searchsorted``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rnnlm.core.errors import InputError


@dataclass(frozen=True)
class BaselineResult:
    name: str
    nats: float
    chars: int

    @property
    def bpc(self) -> float:
        return self.nats / self.chars / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats / self.chars)

    def to_dict(self) -> dict:
        return asdict(self) | {"bpc": self.bpc, "perplexity": self.perplexity}


def unigram(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> BaselineResult:
    """Character frequencies with add-one smoothing, so unseen characters keep a little probability."""
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return BaselineResult("unigram", float(-logp[np.asarray(eval_ids, dtype=np.int64)].sum()), len(eval_ids))


@dataclass
class _Order:
    """One n-gram order: sorted keys with their (raw or continuation) counts, and per-context totals."""

    keys: np.ndarray
    counts: np.ndarray
    ctx_keys: np.ndarray
    ctx_totals: np.ndarray
    ctx_types: np.ndarray
    discount: float


def _ngram_keys(ids: np.ndarray, n: int, vocab: int) -> np.ndarray:
    keys = np.zeros(len(ids) - n + 1, dtype=np.int64)
    for i in range(n):
        keys = keys * vocab + ids[i : len(ids) - n + 1 + i]
    return keys


def _discount(counts: np.ndarray) -> float:
    n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
    return float(n1 / (n1 + 2 * n2)) if n1 + n2 > 0 else 0.5


def _build_order(keys: np.ndarray, counts: np.ndarray, vocab: int) -> _Order:
    ctx, start = np.unique(keys // vocab, return_index=True)
    totals = np.add.reduceat(counts, start).astype(np.float64)
    types = np.diff(np.append(start, len(keys))).astype(np.float64)
    return _Order(keys, counts.astype(np.float64), ctx, totals, types, _discount(counts))


class KneserNey:
    """Interpolated Kneser-Ney over characters, lowest order interpolated with the uniform 1/V."""

    def __init__(self, train_ids: np.ndarray, vocab_size: int, order: int = 5) -> None:
        if vocab_size ** order >= 2**62:
            raise InputError(f"a {order}-gram over {vocab_size} symbols does not fit 64-bit keys; lower the order")
        ids = np.asarray(train_ids, dtype=np.int64)
        self.vocab, self.order = vocab_size, order
        self.orders: list[_Order] = []
        unique_above = None
        for n in range(order, 0, -1):
            keys, counts = np.unique(_ngram_keys(ids, n, vocab_size), return_counts=True)
            if unique_above is not None:  # continuation counts: distinct left extensions of each n-gram
                keys, counts = np.unique(unique_above % vocab_size**n, return_counts=True)
            self.orders.insert(0, _build_order(keys, counts, vocab_size))
            unique_above = np.unique(_ngram_keys(ids, n, vocab_size))

    def probabilities(self, history: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """p(target | history) for rows of ``history`` (M, order−1) and ``targets`` (M,)."""
        history, targets = np.asarray(history, dtype=np.int64), np.asarray(targets, dtype=np.int64)
        p = np.full(len(targets), 1.0 / self.vocab)
        ctx = np.zeros(len(targets), dtype=np.int64)
        for n, level in enumerate(self.orders, start=1):
            if n > 1:
                ctx = history[:, self.order - n] * self.vocab ** (n - 2) + ctx
            key = ctx * self.vocab + targets
            count = _lookup(level.keys, level.counts, key)
            total = _lookup(level.ctx_keys, level.ctx_totals, ctx)
            types = _lookup(level.ctx_keys, level.ctx_types, ctx)
            seen = total > 0
            d = level.discount
            safe = np.where(seen, total, 1.0)
            p = np.where(seen, (np.maximum(count - d, 0.0) + d * types * p) / safe, p)
        return p

    def distribution(self, context: np.ndarray) -> np.ndarray:
        """The full next-symbol distribution after ``context`` (its last order−1 ids)."""
        history = np.zeros(self.order - 1, dtype=np.int64)
        tail = np.asarray(context, dtype=np.int64)[-(self.order - 1) :] if self.order > 1 else []
        history[len(history) - len(tail) :] = tail
        return self.probabilities(np.tile(history, (self.vocab, 1)), np.arange(self.vocab))


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    pos = np.clip(np.searchsorted(keys, query), 0, max(len(keys) - 1, 0))
    hit = keys[pos] == query if len(keys) else np.zeros(len(query), dtype=bool)
    return np.where(hit, values[pos] if len(keys) else 0.0, 0.0)


def kneser_ney(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int, order: int = 5) -> BaselineResult:
    """Fit on ``train_ids``; score ``eval_ids`` with the preceding training ids as the first history."""
    model = KneserNey(train_ids, vocab_size, order)
    context = np.concatenate([np.asarray(train_ids[-(order - 1) :], dtype=np.int64) if order > 1 else [],
                              np.asarray(eval_ids, dtype=np.int64)]).astype(np.int64)
    history = np.lib.stride_tricks.sliding_window_view(context, order)[:, : order - 1]  # (M, order−1)
    p = model.probabilities(history, np.asarray(eval_ids, dtype=np.int64))
    return BaselineResult(f"{order}-gram Kneser-Ney", float(-np.log(p).sum()), len(eval_ids))
