"""Loss in nats, perplexity and bits per character, comparable across tokenizers.

bpc = total nats ÷ characters of the evaluated text ÷ ln 2 (docs/developer/rules.md), so a
subword model and a character model are ranked on the same scale; perplexity is
per token.  The text is cut into ``streams`` contiguous segments evaluated side
by side, each carrying its hidden state from its own start — the streamed
figure, batched so it costs one pass of the model rather than a batch-1 crawl.
``window`` instead scores fresh-state windows, as nanoGPT's evaluation does.
Validation during training scores a fixed sample of the split (``data.val_scope``):
the same rows, from fresh states, through :func:`evaluate_rows`.
:func:`score_ids` scores one text as one stream (``rnnlm score``): the same
figure as ``streams=1``, plus the bits of each character and of each line.
Everywhere, a row's first token is its context, never predicted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.core.device import autocast_context, model_device
from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers.char import codepoints
from rnnlm.model.network import RNNLM


@dataclass(frozen=True)
class EvalResult:
    nats: float
    tokens: int
    chars: int

    @property
    def nats_per_token(self) -> float:
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.nats_per_token, 700.0))

    @property
    def bpc(self) -> float:
        return self.nats / self.chars / math.log(2)

    @property
    def nats_per_char(self) -> float:
        return self.nats / self.chars

    def to_dict(self) -> dict:
        return asdict(self) | {
            "nats_per_token": self.nats_per_token,
            "nats_per_char": self.nats_per_char,
            "perplexity": self.perplexity,
            "bpc": self.bpc,
        }


# Logits held at once during evaluation, in elements (16 MB of float32): rows × chunk × vocabulary stays under
# it, so a 6,000-character or 32k-piece vocabulary is scored in bounded memory (in smaller chunks).
LOGITS_BUDGET = 1 << 22
MAX_ROWS = 512


def _rows_of(ids: np.ndarray, streams: int | None, window: int | None) -> list[np.ndarray]:
    """Cut ``ids`` into rows scored from a fresh state, each predicting its ids after the first.

    Consecutive rows overlap by one id (a row's last target is the next row's
    first input), so every id but the very first is predicted exactly once.
    ``streams``: that many equal contiguous segments; ``window``: rows of
    ``window`` predictions each (nanoGPT's fresh-state windows).
    """
    n = len(ids) - 1
    if window is not None:
        bounds = list(range(0, n, window)) + [n]
    else:
        count = max(1, min(streams, n // 2))
        bounds = [round(i * n / count) for i in range(count + 1)]
    return [ids[a : b + 1] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def evaluate_rows(
    model: RNNLM,
    rows: list[np.ndarray],
    *,
    token_chars: np.ndarray | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Summed nats of predicting each row's ids after its first, every row from a fresh state.

    Rows are batched (shorter ones padded, their padding ignored) and walked in
    time chunks carrying the state, with rows × chunk × vocabulary capped by
    ``LOGITS_BUDGET``.  ``progress(done, total)`` counts predicted ids.
    """
    return _score_rows(model, rows, token_chars=token_chars, autocast_dtype=autocast_dtype, progress=progress)[0]


# no_grad, not inference_mode: with torch 2.13's CPU build (AMD EPYC, oneDNN) a 1×512 LSTM over 32 × 43
# characters took 1,083 ms under inference_mode and 132 ms under no_grad, a bf16 decoder 418 ms against 95 ms;
# validating tinyshakespeare's 55k characters went from 15.0 s to 7.4 s (same nats to the last digit).
@torch.no_grad()
def _score_rows(
    model: RNNLM,
    rows: list[np.ndarray],
    *,
    token_chars: np.ndarray | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
    per_token: bool = False,
) -> tuple[EvalResult, list[np.ndarray] | None]:
    """:func:`evaluate_rows`, and with ``per_token`` the nats of each predicted id too (one float64 array per row).

    The total is summed exactly as without ``per_token`` (the same calls, the
    same reduction), so a score with per-character bits equals the plain figure.
    """
    rows = [np.asarray(r) for r in rows if len(r) >= 2]
    if not rows:
        raise InputError("evaluation text too short (need at least 2 tokens)")
    device = model_device(model)
    vocab = model.config.vocab_size
    batch = max(1, min(MAX_ROWS, len(rows), LOGITS_BUDGET // (vocab * 32)))
    total = sum(len(r) - 1 for r in rows)
    nats = torch.zeros((), dtype=torch.float64, device=device)
    kept: list[np.ndarray] = []  # per_token: the nats of each row's predicted ids, in order
    done = 0
    was_training = model.training
    model.eval()
    try:
        for b0 in range(0, len(rows), batch):
            group = rows[b0 : b0 + batch]
            width = max(len(r) for r in group)
            grid = np.zeros((len(group), width), dtype=np.int64)  # (S, L+1)
            targets = np.full((len(group), width), -100, dtype=np.int64)  # -100: padding, ignored
            for i, r in enumerate(group):
                grid[i, : len(r)] = r
                targets[i, : len(r) - 1] = r[1:]
            x = torch.from_numpy(grid).to(device)
            y = torch.from_numpy(targets).to(device)
            chunk = max(1, min(256, LOGITS_BUDGET // (len(group) * vocab)))
            state = model.init_state(len(group), device)
            pieces = []  # per_token: (S, t) nats of each chunk
            for t0 in range(0, width - 1, chunk):
                t1 = min(t0 + chunk, width - 1)
                with autocast_context(device, autocast_dtype):
                    logits, state = model(x[:, t0:t1], state)  # (S, t, V)
                flat, wanted = logits.float().reshape(-1, vocab), y[:, t0:t1].reshape(-1)
                nats += F.cross_entropy(flat, wanted, reduction="sum", ignore_index=-100).double()
                if per_token:
                    each = F.cross_entropy(flat, wanted, reduction="none", ignore_index=-100)  # (S·t,) 0 at padding
                    pieces.append(each.reshape(len(group), t1 - t0).double().cpu().numpy())
                if progress is not None:
                    done += int(np.count_nonzero(targets[:, t0:t1] != -100))
                    progress(done, total)
            if per_token:
                grid_nats = np.concatenate(pieces, axis=1)  # (S, L)
                kept += [grid_nats[i, : len(r) - 1] for i, r in enumerate(group)]
    finally:
        model.train(was_training)
    targets_all = np.concatenate([r[1:] for r in rows])
    chars = int(len(targets_all) if token_chars is None else token_chars[targets_all].sum())
    result = EvalResult(nats=float(nats), tokens=int(len(targets_all)), chars=max(chars, 1))
    return result, (kept if per_token else None)


def evaluate_ids(
    model: RNNLM,
    ids: np.ndarray,
    *,
    token_chars: np.ndarray | None = None,
    streams: int = 32,
    window: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Score every id of ``ids`` (1-D) but the first, which has no context.

    Streamed: ``streams`` equal segments side by side, each carrying its state
    from its own start.  ``window``: fresh-state windows of that many ids.
    ``token_chars[i]`` is how many characters id ``i`` spells; ``None`` means one
    per token, so the denominator is the characters of all predicted ids.
    """
    if len(ids) < 2:
        raise InputError(f"evaluation text too short: {len(ids)} tokens (need at least 2)")
    if window is not None and window <= 0:
        raise InputError(f"--window must be positive, got {window}")
    if streams < 1:
        raise InputError(f"--streams must be at least 1, got {streams}")
    rows = _rows_of(np.asarray(ids), streams, window)
    return evaluate_rows(model, rows, token_chars=token_chars, autocast_dtype=autocast_dtype, progress=progress)


def evaluate_scope(
    model: RNNLM,
    ids: np.ndarray,
    segments: list[np.ndarray] | None,
    *,
    token_chars: np.ndarray | None = None,
    streams: int = 32,
    window: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Score a validation scope: ``segments`` (a fixed sample, see ``data.val_scope``), or all of ``ids`` when None.

    Each sampled segment starts from a fresh state, like each stream of the
    whole-text figure; with ``window`` every segment is cut into windows.
    """
    if segments is None:
        return evaluate_ids(model, ids, token_chars=token_chars, streams=streams, window=window, progress=progress)
    rows = segments if window is None else [row for seg in segments for row in _rows_of(seg, None, window)]
    return evaluate_rows(model, rows, token_chars=token_chars, progress=progress)


@dataclass(frozen=True)
class LineScore:
    """One line of a scored text: its characters' bits, the newline that ends it included."""

    line: int  # 1-based
    text: str  # without its newline
    chars: int  # characters scored (the text's first character and any left out are not)
    bits: float

    @property
    def bpc(self) -> float | None:
        return self.bits / self.chars if self.chars else None

    def to_dict(self) -> dict:
        return {"line": self.line, "text": self.text, "chars": self.chars, "bits": self.bits, "bpc": self.bpc}


@dataclass(frozen=True)
class TextScore:
    """What ``rnnlm score`` / ``LanguageModel.score`` says about one text, scored as one stream from a fresh state.

    ``context_chars`` are the characters of the text's first token (one for a
    character model): the context the first prediction starts from, never scored
    (as in ``eval`` and validation).  ``skipped`` characters outside the
    vocabulary were left out (``skip_unknown``); ``unk`` were scored as
    ``<unk>``; ``unknown`` names them.  ``per_char`` is aligned with the text's
    characters (None where not scored); ``lines`` are in text order.
    """

    nats: float
    chars: int
    tokens: int
    text_chars: int
    context_chars: int
    skipped: int = 0
    unk: int = 0
    unknown: tuple[str, ...] = ()
    per_char: tuple[float | None, ...] | None = None
    lines: tuple[LineScore, ...] | None = None

    @property
    def bits(self) -> float:
        return self.nats / math.log(2)

    @property
    def bpc(self) -> float:
        return self.nats / self.chars / math.log(2)  # as EvalResult.bpc, so score equals eval --streams 1

    def to_dict(self) -> dict:
        record = {"bpc": self.bpc, "bits": self.bits, "nats": self.nats, "chars": self.chars, "tokens": self.tokens,
                  "text_chars": self.text_chars, "context_chars": self.context_chars, "skipped": self.skipped,
                  "unk": self.unk, "unknown": list(self.unknown)}
        if self.lines is not None:
            record["lines"] = [line.to_dict() for line in self.lines]
        if self.per_char is not None:
            record["per_char"] = list(self.per_char)
        return record


def score_ids(
    model: RNNLM,
    ids: np.ndarray,
    *,
    token_chars: np.ndarray | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[EvalResult, np.ndarray]:
    """One text as one stream from a fresh state: the figure of ``evaluate_ids(..., streams=1)`` (the same
    rows, calls and sum) and the nats of each id after the first (float64, ``len(ids) - 1``)."""
    ids = np.asarray(ids).reshape(-1)
    if len(ids) < 2:
        raise InputError(f"too little text to score: {len(ids)} token (the first is context; need at least 2)")
    result, kept = _score_rows(model, _rows_of(ids, 1, None), token_chars=token_chars,
                               autocast_dtype=autocast_dtype, progress=progress, per_token=True)
    return result, kept[0]


def char_bits(ids: np.ndarray, token_nats: np.ndarray, token_chars: np.ndarray | None = None) -> np.ndarray:
    """Bits of each character the ids spell (float64; NaN for the first token's characters, the context).

    A token of several characters shares its bits evenly among them; a byte
    piece that continues a character (it spells none) adds its bits to the
    character it continues, or to the first scored one when that is the context.
    So the finite entries sum to the text's total bits.
    """
    ids = np.asarray(ids).reshape(-1)
    lengths = np.ones(len(ids), np.int64) if token_chars is None else np.asarray(token_chars)[ids].astype(np.int64)
    ends = np.cumsum(lengths)
    total, context = int(ends[-1]), int(ends[0])
    bits = np.full(total, np.nan)
    if context >= total:
        return bits
    each = np.asarray(token_nats, dtype=np.float64) / math.log(2)  # (len(ids) - 1,)
    spans, span_ends = lengths[1:], ends[1:]
    spelled = spans > 0
    bits[context:] = np.repeat(each[spelled] / spans[spelled], spans[spelled])
    np.add.at(bits, np.clip(span_ends[~spelled] - 1, context, total - 1), each[~spelled])
    return bits


def line_scores(text: str, bits: np.ndarray) -> list[LineScore]:
    """Per line of ``text`` (cut at ``\\n``, each line owning the newline that ends it): its scored characters and
    their bits, from ``bits`` aligned with the text's characters (NaN: not scored)."""
    if not text:
        return []
    starts = np.concatenate([[0], np.flatnonzero(codepoints(text) == 10) + 1])
    if starts[-1] == len(text):
        starts = starts[:-1]  # a final newline ends the last line; it starts none
    scored = ~np.isnan(bits)
    sums = np.add.reduceat(np.where(scored, bits, 0.0), starts)
    counts = np.add.reduceat(scored.astype(np.int64), starts)
    texts = text.split("\n")[: len(starts)]
    return [LineScore(line=i + 1, text=t, chars=int(c), bits=float(b))
            for i, (t, c, b) in enumerate(zip(texts, counts, sums))]
