"""``rnnlm.inspect(...)``: what each unit tracks, where the model is surprised, how far its gradient reaches.

One call runs a checkpoint over a text (by default a few thousand characters
of its validation split, the state first warmed on the text before them),
recomputes every layer's states and gates at every step (:mod:`rnnlm.model.unroll`),
scores units against per-character features (:mod:`rnnlm.inspection.features`,
:mod:`rnnlm.inspection.finder`), measures surprise against a character n-gram
(:mod:`rnnlm.inspection.surprise`) and the gradient's reach (:mod:`rnnlm.inspection.gradreach`), and
returns everything as numpy arrays in an :class:`Inspection`, which can write
the page (:mod:`rnnlm.inspection.page`), a JSON summary and an ``.npz``.

The module is named ``inspection`` because ``rnnlm.inspect`` is the function:
a submodule of that name would replace it on the package once imported.
It never imports the trainer: a model is loaded with :func:`rnnlm.generation.language_model.load`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnlm.data.corpus import iter_text, read_text, same_corpus
from rnnlm.core.errors import InputError
from rnnlm.inspection.features import Feature, all_features, parse_feature
from rnnlm.core.fileio import NPZ, NPZ_MARK, write_output
from rnnlm.inspection.defaults import DEFAULT_LENGTH, DEFAULT_MAX_K, DEFAULT_THRESHOLD, DEFAULT_WARMUP
from rnnlm.inspection.finder import Column, FeatureResult, find_units
from rnnlm.inspection.gradreach import GradientReach, gradient_reach
from rnnlm.model.loading import LoadedModel, load_model
from rnnlm.inspection.surprise import NGRAM_TRAIN_CHARS, char_layout, ngram_bits, spread_bits, token_surprise, wins_and_losses
from rnnlm.data.tokenizers.char import describe_chars
from rnnlm.model.unroll import SIGMOID_GATES, unroll, warm

Progress = Callable[[str, int, int], None]


@dataclass
class Inspection:
    """Everything ``inspect`` measured; arrays per step (token) or per character, as named.

    ``signals[name]`` is (layers, steps, hidden) float32 for ``h`` and, by
    cell, ``c`` (as tanh(c)), ``i f g o`` or ``r z n``; ``token_of_char`` maps
    each character of ``text`` to its step.  Layers count from 0 here and from
    1 in the page and the JSON ("L1 u87").
    """

    checkpoint: str
    cell: str
    num_layers: int
    hidden_size: int
    tokenizer: str
    text: str
    source: str
    start: int
    warmup_chars: int
    ids: np.ndarray
    token_of_char: np.ndarray
    signals: dict[str, np.ndarray]
    token_bits: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    vocabulary: list[str]
    bits: np.ndarray
    features: list[Feature]
    found: list[FeatureResult]
    threshold: float
    saturation: dict[str, np.ndarray]
    reach: GradientReach | None
    ngram_bits: np.ndarray | None = None
    ngram_name: str | None = None
    ngram_note: str | None = None
    wins: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    read_files: tuple[str, ...] = ()  # the checkpoint and the texts read: an output never replaces one of them

    def char_signal(self, name: str, layer: int, unit: int) -> np.ndarray:
        """One unit's signal at every character (layer from 0)."""
        return self.signals[name][layer, self.token_of_char, unit]

    @property
    def bpc(self) -> float:
        return float(self.bits.mean())

    def top_units(self) -> list[tuple[int, int]]:
        """(layer, unit) of every listed unit and of each scored feature's best one, in ranked order, once each."""
        seen: dict[tuple[int, int], None] = {}
        for result in self.found:
            for rank, u in enumerate(result.units):
                if u.listed or rank == 0:
                    seen.setdefault((u.column.layer, u.column.unit), None)
        return list(seen)

    def to_dict(self) -> dict:
        from rnnlm.inspection.report import report

        return report(self)

    def write_page(self, path: str | Path, units: Sequence[tuple[int, int]] | str | None = None, *,
                   force: bool = False) -> Path:
        """The self-contained HTML page; ``units`` adds full signals for more units (``"all"``: every unit).

        An existing file at ``path`` is replaced only if it is a page rnnlm wrote, or with ``force``
        (:func:`rnnlm.core.fileio.check_output`).
        """
        from rnnlm.inspection.page import write_page

        return write_page(self, Path(path), units, force=force)

    def save_npz(self, path: str | Path, *, force: bool = False) -> Path:
        """Every array at full precision, for notebooks (``np.load``); ``rnnlm_inspect`` marks the file as ours."""
        arrays = {NPZ_MARK: np.array(1), **{f"signal_{k}": v for k, v in self.signals.items()}}
        arrays.update({f"feature_{f.name}": f.values for f in self.features})
        arrays.update(ids=self.ids, token_of_char=self.token_of_char, token_bits=self.token_bits, bits=self.bits,
                      top_ids=self.top_ids, top_probs=self.top_probs, text=np.array(self.text))
        if self.ngram_bits is not None:
            arrays["ngram_bits"] = self.ngram_bits
        if self.reach is not None:
            arrays["gradient_reach"] = self.reach.norms
        arrays.update({f"saturation_{g}": v for g, v in self.saturation.items()})
        return write_output(path, lambda f: np.savez_compressed(f, **arrays), NPZ, inputs=self.read_files,
                            force=force, flag="--npz")


def _corpus_text(lm: LoadedModel) -> tuple[str | None, str | None]:
    """The run's corpus text, or None with why it is not at hand (missing or changed files)."""
    corpus = lm.meta.get("corpus") or {}
    paths = [Path(p) for p in corpus.get("paths", [])]
    if not paths or not all(p.is_file() for p in paths):
        return None, f"the run's corpus files are not at hand ({', '.join(map(str, paths)) or 'none recorded'})"
    hashes: list[str] = []
    text = "".join(iter_text(paths, hashes=hashes))
    if not same_corpus(corpus, hashes):
        return None, "the run's corpus files changed since training"
    return text, None


def _split_bounds(lm: LoadedModel, n: int) -> np.ndarray:
    """Character offsets of the train / val [/ test] splits (training cuts the corpus by characters)."""
    return np.floor(np.cumsum((0.0,) + tuple(lm.train_config.split)) * n).astype(np.int64)


def read_files(lm: LoadedModel, file) -> tuple[str, ...]:
    """The checkpoint, FILE and the run's corpus and validation files: what an inspection may read."""
    split, corpus = lm.meta.get("split") or {}, lm.meta.get("corpus") or {}
    named = [lm.path, file, split.get("val_file"), *corpus.get("paths", [])]
    return tuple(str(p) for p in named if p)


def _texts(lm: LoadedModel, file, text, want_train: bool) -> tuple[str, str, str | None, str | None]:
    """(source text, its label, training text for the n-gram or None, why it is None)."""
    val_file = (lm.meta.get("split") or {}).get("val_file")
    need_corpus = want_train or (text is None and file is None and not val_file)
    corpus, why = _corpus_text(lm) if need_corpus else (None, "turned off")
    train = None
    if corpus is not None:
        bounds = _split_bounds(lm, len(corpus))
        train = corpus[max(0, bounds[1] - NGRAM_TRAIN_CHARS) : bounds[1]]
    if text is not None:
        return text, "text", train, why
    if file is not None:
        if not Path(file).is_file():
            raise InputError(f"file to inspect not found: {file}" if not Path(file).exists() else f"{file} is not a file")
        return read_text([Path(file)]), str(file), train, why
    if val_file:
        return read_text([Path(val_file)]), f"validation file {val_file}", train, why
    if corpus is None:
        raise InputError(f"{why}; pass the text to inspect as FILE")
    bounds = _split_bounds(lm, len(corpus))
    return corpus[bounds[1] : bounds[2]], "validation split", train, why


def _encode(lm: LoadedModel, text: str) -> np.ndarray:
    tok = lm.tokenizer
    unknown = tok.unknown_chars(text) if tok.kind == "char" else []
    if unknown and tok.unk_id is None:
        raise InputError(f"characters not in the model's vocabulary: {describe_chars(unknown)}; inspect a text without them")
    if unknown:
        warnings.warn(f"{len(unknown)} distinct characters are not in the vocabulary and map to <unk>: "
                      f"{describe_chars(unknown, 5)}", stacklevel=3)
    return np.asarray(tok.encode(text, unknown="unk" if unknown else "error"), dtype=np.int64)


def _vocabulary(lm: LoadedModel) -> list[str]:
    """How each token reads in the page's top-5 lists."""
    return [lm.tokenizer.decode([i]) for i in range(lm.tokenizer.vocab_size)]


def _matrix(signals: dict[str, np.ndarray], token_of_char: np.ndarray) -> tuple[np.ndarray, list[Column]]:
    """Per-character (N, D) matrix of every unit's h and (LSTM) tanh(c), and what each column is."""
    parts, columns = [], []
    for layer in range(signals["h"].shape[0]):
        for name in ("h", "c"):
            if name in signals:
                parts.append(signals[name][layer][token_of_char])
                columns += [Column(layer, name, u) for u in range(signals[name].shape[2])]
    return np.concatenate(parts, axis=1), columns


def inspect(checkpoint: str | Path | LoadedModel | None = None, file: str | Path | None = None, *,
            text: str | None = None, latest: bool = False, length: int = DEFAULT_LENGTH, start: int | None = None,
            warmup: int = DEFAULT_WARMUP, features: Sequence[str] = (), threshold: float = DEFAULT_THRESHOLD,
            per_feature: int = 3, max_k: int = DEFAULT_MAX_K, reach_windows: int = 32, ngram: bool = True,
            device: str = "cpu", progress: Progress | None = None) -> Inspection:
    """Inspect ``checkpoint`` (a file, a run directory, a loaded model, or None for the newest run) on a text.

    The text is ``text``, ``file``, or the run's validation split; ``length``
    characters from ``start`` (default: ``warmup`` characters in, so the state
    is warmed on the text before; less where the text is short).
    ``features`` adds ``NAME=REGEX`` yes/no features.  ``progress(stage, done,
    total)`` is told what is happening.
    """
    began = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    for name, value in (("length", length), ("max_k", max_k), ("reach_windows", reach_windows), ("per_feature", per_feature)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if not 0 < threshold <= 1:
        raise InputError(f"threshold must be in (0, 1], got {threshold!r}")
    if warmup < 0:
        raise InputError(f"warmup must be ≥ 0, got {warmup!r}")
    extra = [parse_feature(spec) for spec in features]
    lm = checkpoint if isinstance(checkpoint, LoadedModel) else load_model(checkpoint, latest=latest, device=device)
    report("reading text", 0, 1)
    source, label, train_text, why = _texts(lm, file, text, ngram)
    if start is None:
        start = min(warmup, max(0, len(source) - length))
    if not 0 <= start < len(source):
        raise InputError(f"start {start} is outside the text ({len(source):,} characters)")
    body, before = source[start : start + length], source[max(0, start - warmup) : start]
    if len(body) < 2:
        raise InputError(f"the text to inspect has {len(body)} character(s); give at least 2")
    ids, warm_ids = _encode(lm, body), _encode(lm, before) if before else np.zeros(0, dtype=np.int64)
    if not len(warm_ids) and not lm.tokenizer.unknown_chars("\n"):
        warm_ids = _encode(lm, "\n")  # no text before: prime with a newline, as generate does
    module, dev = lm.module, lm.device
    torch_ids = torch.from_numpy(ids).to(dev)
    if len(warm_ids):
        state, first = warm(module, torch.from_numpy(warm_ids).to(dev))
    else:
        state, first = module.init_state(1, dev), torch.zeros(module.config.vocab_size, device=dev)
    report("recomputing states", 0, module.config.num_layers)
    signals_t, logits = unroll(module, torch_ids, state, lambda d, t: report("recomputing states", d, t))
    signals = {k: v.cpu().numpy() for k, v in signals_t.items()}
    token_bits, top_ids, top_probs = token_surprise(logits.cpu(), first.cpu(), torch_ids.cpu())
    token_of_char, lens = char_layout(ids, lm.tokenizer.char_lengths(), len(body))
    bits = spread_bits(token_bits, lens)
    feats = all_features(body, extra)
    report("scoring units", 0, 1)
    matrix, columns = _matrix(signals, token_of_char)
    found = find_units(feats, matrix, columns, per_feature=per_feature, threshold=threshold)
    saturation = {g: np.stack([(signals[g] < 0.1).mean(axis=1), (signals[g] > 0.9).mean(axis=1)], axis=-1)
                  for g in SIGMOID_GATES[lm.config.cell]}  # (L, H, 2): below 0.1, above 0.9
    result = Inspection(
        checkpoint=str(lm.path), cell=lm.config.cell, num_layers=lm.config.num_layers, hidden_size=lm.config.hidden_size,
        tokenizer=lm.tokenizer.kind, text=body, source=label, start=start, warmup_chars=len(before), ids=ids,
        token_of_char=token_of_char, signals=signals, token_bits=token_bits, top_ids=top_ids, top_probs=top_probs,
        vocabulary=_vocabulary(lm), bits=bits, features=feats, found=found, threshold=threshold,
        saturation=saturation, reach=None, read_files=read_files(lm, file))
    if ngram and train_text:
        report("n-gram baseline", 0, 1)
        result.ngram_bits, result.ngram_name = ngram_bits(train_text, before, body)
        result.wins = wins_and_losses(body, bits, result.ngram_bits)
    else:
        result.ngram_note = f"n-gram track left out: {why or 'the training split is empty'}"
    report("gradient reach", 0, 1)
    result.reach = gradient_reach(module, np.concatenate([warm_ids, ids]), max_k=max_k, windows=reach_windows)
    result.elapsed_s = time.perf_counter() - began
    return result


__all__ = ["Inspection", "inspect", "DEFAULT_LENGTH", "DEFAULT_WARMUP"]
