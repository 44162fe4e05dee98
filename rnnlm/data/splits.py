"""Splits and truncated-BPTT batches over a 1-D array of token ids.

The layout follows pytorch/examples' ``batchify``: the training ids are cut
into ``S`` equal contiguous streams, one row each, and training walks along the
rows ``T`` steps at a time, so the hidden state carried from one window to the
next belongs to the same stream::

    ids:  a b c d e f g h i j k l m n o p q r s t u v w x   (S = 3 streams)
    rows: [a b c d e f g h]            window 0: x = cols 0..T-1, y = cols 1..T
          [i j k l m n o p]            window 1: x = cols T..2T-1, y = cols T+1..2T
          [q r s t u v w x]

Under DDP there are ``batch_size × world_size`` streams and rank ``r`` owns rows
``r·B … (r+1)·B − 1`` — disjoint text, so all-reduced gradients equal one
process training on the global batch.  The window for a step is a pure
function of the step, so resuming needs only the step (and the hidden state).
Ids may be a read-only ``np.memmap``: only one window is copied per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlm.core.config import TrainConfig
from rnnlm.data.corpus import encode_char_corpus, read_text, scan_corpus
from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers.subword import SentencePieceTokenizer
from rnnlm.data.tokenizers.char import CharTokenizer, codepoints


def split_ids(ids: np.ndarray, fractions: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Contiguous train / validation [/ test] slices by the given fractions of the ids.

    Two fractions give (train, val) — nanoGPT's 0.9,0.1 — three add a test slice.
    Slices are views, so a memmap stays a memmap.
    """
    n = len(ids)
    bounds = np.floor(np.cumsum((0.0,) + tuple(fractions)) * n).astype(np.int64)
    return tuple(ids[bounds[i] : bounds[i + 1]] for i in range(len(fractions)))


def encode_splits(paths: list[Path], config: TrainConfig, tokenizer, cache_dir: Path | None, *,
                  rank: int = 0, share: Callable | None = None, progress: Callable | None = None,
                  val_text: str | None = None):
    """Tokenizer (built unless given) and the (train, val[, test]) id arrays, split by characters.

    A subword model is trained on rank 0 only; ``share`` (under torchrun) takes
    rank 0's model, or None on the other ranks, and returns rank 0's model on all.
    ``progress(name, done, total)`` follows the long phases (see ``progress.PhaseLines``).
    ``val_text`` (a ``--val-file``'s text) joins the corpus in a new character
    vocabulary, as char-rnn and nanoGPT build theirs from all the text
    (docs/developer/rules.md): Korean or Chinese validation text nearly always holds
    characters the training text lacks, and without them in the vocabulary the
    run could not be scored at all.  Sentencepiece ignores it: it trains on the
    training split only and spells unseen characters in bytes.
    """
    info = scan_corpus(paths, cache_dir=cache_dir, progress=progress)
    if config.tokenizer == "char":
        if tokenizer is None:
            points, counts = info.codepoints, info.counts
            if val_text is not None:
                points, counts = _add_counts(points, counts, *np.unique(codepoints(val_text), return_counts=True))
            tokenizer = CharTokenizer.from_counts(points, counts, config.min_char_count)
        else:
            _check_coverage(tokenizer, info)
        return tokenizer, split_ids(encode_char_corpus(info, tokenizer, cache_dir, progress=progress), config.split), info
    parts = split_ids(read_text(paths), config.split)  # the same character bounds as the char path
    if tokenizer is None:
        if rank == 0:
            phase = f"building the {config.tokenizer} model ({config.vocab_size:,} pieces)"
            if progress is not None:
                progress(phase, 0, 0)
            tokenizer = SentencePieceTokenizer.train(parts[0], config.tokenizer, config.vocab_size)
            if progress is not None:
                progress(phase, 1, 0)
        if share is not None:
            tokenizer = share(tokenizer)
    return tokenizer, tuple(tokenizer.encode(p) for p in parts), info


def _add_counts(points: np.ndarray, counts: np.ndarray, more_points: np.ndarray,
                more_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-code-point counts of two texts together (each given as sorted distinct code points and their counts)."""
    merged = np.union1d(points.astype(np.uint32), more_points.astype(np.uint32))
    total = np.zeros(len(merged), dtype=np.int64)
    np.add.at(total, np.searchsorted(merged, points), counts)
    np.add.at(total, np.searchsorted(merged, more_points), more_counts)
    return merged, total


def unseen_in_training(val_ids: np.ndarray, train_ids: np.ndarray, tokenizer,
                       chunk: int = 1 << 22) -> tuple[int, list[str]]:
    """Occurrences and distinct characters of the validation ids that the training split never holds.

    For the one warning a ``--val-file`` run gives about them.  The training
    split is counted in chunks of ``chunk`` ids: it may be a memory map of a
    100 MB corpus, and one ``np.bincount`` over all of it would first copy it
    into an int64 array eight times its size.
    """
    seen = np.zeros(tokenizer.vocab_size, dtype=bool)
    for start in range(0, len(train_ids), chunk):
        seen |= np.bincount(np.asarray(train_ids[start : start + chunk]), minlength=tokenizer.vocab_size) > 0
    unseen = np.asarray(val_ids)[~seen[np.asarray(val_ids)]]
    return len(unseen), list(tokenizer.decode(np.unique(unseen)))


def _check_coverage(tokenizer, info) -> None:
    """A fine-tuned or resumed char model must cover the corpus (or have ``<unk>``)."""
    if tokenizer.unk_id is not None:
        return
    known = {ord(c) for c in tokenizer.chars}
    missing = [chr(int(cp)) for cp in info.codepoints if int(cp) not in known]
    if missing:
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:10])
        raise InputError(f"the checkpoint's vocabulary does not cover this corpus: {shown}")


# Validation during training scores the whole split up to this many characters, else this many characters
# in VAL_SEGMENTS evenly spaced segments (docs/developer/rules.md): a 5 MB split of a 6,000-character vocabulary took
# minutes per validation; the sample costs the same on any corpus and is the same text for every cell,
# tokenizer and baseline scored on it.
VAL_SAMPLE_CHARS = 256_000
VAL_SEGMENTS = 32


def val_scope(num_chars: int, max_chars: int | None = None, segments: int | None = None) -> dict:
    """What validation scores, chosen from the split's length alone; stored in every checkpoint's header.

    ``{"kind": "whole", "chars": n}`` or ``{"kind": "sample", "chars": total,
    "segment_chars": L, "offsets": [...]}``, offsets counted in characters of the split.
    """
    max_chars = VAL_SAMPLE_CHARS if max_chars is None else max_chars
    segments = VAL_SEGMENTS if segments is None else segments
    if num_chars <= max_chars:
        return {"kind": "whole", "chars": int(num_chars)}
    length = max_chars // segments
    offsets = np.linspace(0, num_chars - length, segments).astype(np.int64)
    return {"kind": "sample", "chars": int(length * segments), "segment_chars": int(length), "offsets": offsets.tolist()}


def split_chars(ids: np.ndarray, tokenizer) -> int:
    """Characters spelled by ``ids`` (one per id for a character tokenizer)."""
    lengths = tokenizer.char_lengths()
    return int(len(ids) if lengths is None else lengths[np.asarray(ids)].sum())


def scope_segments(ids: np.ndarray, tokenizer, scope: dict | None) -> list[np.ndarray] | None:
    """The id rows a sample scope scores (each cut at the same characters for any tokenizer); None: the whole split."""
    if scope is None or scope["kind"] == "whole":
        return None
    length = scope["segment_chars"]
    if tokenizer.char_lengths() is None:
        return [np.asarray(ids[o : o + length]) for o in scope["offsets"]]
    text = tokenizer.decode(np.asarray(ids))  # subword round-trips exactly (tests/test_tokenizer.py)
    return [tokenizer.encode(text[o : o + length]) for o in scope["offsets"]]


def min_train_tokens(batch_size: int, bptt: int, world_size: int = 1) -> int:
    """The fewest training ids that make one full batch: every stream needs T+1 ids."""
    return batch_size * world_size * (bptt + 1)


@dataclass
class TBPTTBatches:
    """Fixed-shape (B, T) input/target windows for one rank, indexed by global step."""

    ids: np.ndarray
    batch_size: int
    bptt: int
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        need = min_train_tokens(self.batch_size, self.bptt, self.world_size)
        if len(self.ids) < need:
            raise InputError(
                f"corpus too short: the training split has {len(self.ids):,} tokens but "
                f"batch {self.batch_size} × (bptt {self.bptt} + 1)"
                + (f" × {self.world_size} ranks" if self.world_size > 1 else "")
                + f" needs at least {need:,}; lower --batch-size or --bptt, or use a bigger corpus"
            )
        streams = self.batch_size * self.world_size
        self.stream_len = len(self.ids) // streams
        rows = self.ids[: streams * self.stream_len].reshape(streams, self.stream_len)
        self.rows = rows[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # (B, L)
        self.windows_per_epoch = (self.stream_len - 1) // self.bptt

    @property
    def tokens_per_epoch(self) -> int:
        """Target tokens all ranks see in one pass (the unit of ``--epochs``)."""
        return self.windows_per_epoch * self.bptt * self.batch_size * self.world_size

    def window(self, step: int) -> int:
        return step % self.windows_per_epoch

    def starts_epoch(self, step: int) -> bool:
        """True where the streams wrap to their start, so the carried state must be reset."""
        return self.window(step) == 0

    def target_chars(self, step: int, token_chars: np.ndarray | None) -> int:
        """Characters the targets of ``step`` spell on this rank (tokens × characters per token, from the ids)."""
        start = self.window(step) * self.bptt
        targets = self.rows[:, start + 1 : start + self.bptt + 1]  # (B, T)
        return int(targets.size if token_chars is None else token_chars[np.asarray(targets)].sum())

    def batch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets (teacher forcing) for ``step``: both (B, T) int64."""
        start = self.window(step) * self.bptt
        chunk = np.asarray(self.rows[:, start : start + self.bptt + 1], dtype=np.int64)  # (B, T+1)
        tensor = torch.from_numpy(chunk)
        if device.type == "cuda":
            tensor = tensor.pin_memory().to(device, non_blocking=True)
        return tensor[:, :-1], tensor[:, 1:]
