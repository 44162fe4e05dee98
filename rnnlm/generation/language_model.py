"""``rnnlm.load(path)``: a checkpoint alone becomes a usable language model.

:class:`LanguageModel` is a :class:`rnnlm.model.loading.LoadedModel` (config,
tokenizer and module, all from the checkpoint) that offers ``generate`` (sampling or beam search), ``stream``, ``evaluate``,
``score`` and ``copy_check``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnlm.core.errors import InputError, RnnlmError
from rnnlm.data.corpus import read_text, same_corpus
from rnnlm.data.splits import encode_splits, scope_segments
from rnnlm.data.tokenizers.char import codepoints, describe_chars
from rnnlm.evaluation.metrics import (EvalResult, TextScore, char_bits, evaluate_ids, evaluate_scope, line_scores,
                                      score_ids)
from rnnlm.core.config import SamplingConfig
from rnnlm.generation.sample import generate_texts, stream_text
from rnnlm.model.loading import LoadedModel, load_parts
from rnnlm.model.network import RNNLM

_S = SamplingConfig()  # the sampling defaults' one home

if TYPE_CHECKING:
    from rnnlm.generation.beam import Hypothesis
    from rnnlm.generation.copycheck import CopyReport


class LanguageModel(LoadedModel):
    """A trained model ready to sample and score text."""

    def __init__(self, module: RNNLM, tokenizer, meta: dict[str, Any], path: Path) -> None:
        super().__init__(module, tokenizer, meta, path)
        self._copy_indexes: dict = {}  # copy_check's index per --corpus choice, opened once

    def quantize_int8(self) -> LanguageModel:
        """Swap in int8 weights for faster batch-1 sampling on CPU (see :mod:`rnnlm.model.int8`); returns self."""
        from rnnlm.model.int8 import quantize_int8

        self.module = quantize_int8(self.module)
        return self

    @property
    def bos_id(self) -> int | None:
        """The newline id primes an empty prompt (a fresh line is the most neutral start); None when the
        vocabulary has no newline.  Public: the server draws with the sampler directly and must prime as this does."""
        if self.tokenizer.kind == "char" and self.tokenizer.unknown_chars("\n"):
            return None
        return int(self.tokenizer.encode("\n")[0])

    def _sampling(self, **kwargs: Any) -> SamplingConfig:
        return SamplingConfig(**{k: v for k, v in kwargs.items() if v is not None})

    def generate(self, prompt: str = "", length: int = _S.length, temperature: float = _S.temperature,
                 top_k: int = _S.top_k, top_p: float = _S.top_p, seed: int | None = None, *,
                 num_samples: int = _S.num_samples, repetition_penalty: float = _S.repetition_penalty,
                 stop: str | None = None, echo: bool = True,
                 beam: int | None = None) -> str | list[str]:
        """Sample text continuing ``prompt``; a list when ``num_samples`` > 1 (sampled as one batch).

        ``beam=N``: beam search instead (deterministic; the ``num_samples`` ≤ N
        best of N beams), where the sampling settings must keep their defaults.
        """
        if beam is not None:
            given = [name for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                                              ("repetition_penalty", repetition_penalty), ("seed", seed))
                     if value != getattr(_S, name)]
            if given:
                raise InputError(f"{', '.join(given)} do not apply to beam search, which is deterministic")
            best = self.beam_search(prompt, beam, length, num_results=num_samples, stop=stop)
            texts = [(prompt if echo else "") + h.text for h in best]
            return texts[0] if num_samples == 1 else texts
        cfg = self._sampling(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                             num_samples=num_samples, repetition_penalty=repetition_penalty, stop=stop)
        texts = generate_texts(self.module, self.tokenizer, prompt, cfg, echo=echo, bos_id=self.bos_id)
        return texts[0] if num_samples == 1 else texts

    def beam_search(self, prompt: str = "", beam: int = 4, length: int = _S.length, *, num_results: int = 1,
                    stop: str | None = None) -> list[Hypothesis]:
        """The ``num_results`` best continuations of ``prompt`` by beam search, with their scores
        (:class:`rnnlm.generation.beam.Hypothesis`: text without the prompt, log-probability, per character)."""
        from rnnlm.generation.beam import beam_search

        return beam_search(self.module, self.tokenizer, prompt, beam=beam, length=length, num_results=num_results,
                           stop=stop, bos_id=self.bos_id)

    def copy_check(self, text: str, *, corpus: Sequence[str | Path] | None = None, progress=None) -> CopyReport:
        """Copy figures (:class:`rnnlm.generation.copycheck.CopyReport`) of generated ``text`` against the training split.

        Pass the generated text only, not the prompt.  The training text is the
        run's corpus files (unchanged since training) or ``corpus`` when they
        moved; its index is built on first use (``progress(phase, done, total)``
        follows the build), cached beside the id cache and reused.
        """
        from rnnlm.generation.copycheck import CopyIndex, plan_for_run

        key = tuple(str(p) for p in corpus or ())
        if key not in self._copy_indexes:
            self._copy_indexes[key] = CopyIndex.open(plan_for_run(self.meta, self.path, corpus), progress)
        return self._copy_indexes[key].check(text)

    def stream(self, prompt: str = "", length: int = _S.length, temperature: float = _S.temperature,
               top_k: int = _S.top_k, top_p: float = _S.top_p, seed: int | None = None, *,
               repetition_penalty: float = _S.repetition_penalty,
               stop: str | None = None, echo: bool = True) -> Iterator[str]:
        """Yield text chunks as they are generated (the prompt first, when echoed)."""
        cfg = self._sampling(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                             repetition_penalty=repetition_penalty, stop=stop)
        return stream_text(self.module, self.tokenizer, prompt, cfg, echo=echo, bos_id=self.bos_id)

    def evaluate(self, text: str | None = None, *, file: str | Path | None = None, window: int | None = None,
                 streams: int | None = None) -> EvalResult:
        """Score all of ``text`` or ``file`` (the hidden state streamed through it, or fresh ``window``s).

        The text is cut into ``streams`` contiguous segments (default: the run's
        ``eval_streams``, 32), each from a fresh state whose first token is context;
        ``streams=1`` scores it as one stream, as :meth:`score` does.
        """
        return evaluate_ids(self.module, self._encode(text, file), token_chars=self.tokenizer.char_lengths(),
                            streams=self._streams(streams), window=window)

    def _streams(self, streams: int | None) -> int:
        return self.train_config.eval_streams if streams is None else streams

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of ``text`` outside the vocabulary, sorted (none for a subword model's bytes)."""
        return self.tokenizer.unknown_chars(text) if self.tokenizer.kind == "char" else []

    def score(self, text: str, *, skip_unknown: bool = False, per_char: bool = False, lines: bool = False,
              progress=None) -> TextScore:
        """Bits per character of ``text`` scored as one stream from a fresh state (``rnnlm score``; docs/score.md).

        The first token (the first character, for a character model) is the
        context of the first prediction and is not scored, as in :meth:`evaluate`
        and validation; so the figure equals ``evaluate(text, streams=1)``.
        Characters outside the vocabulary score as ``<unk>`` where the vocabulary
        has one (with a warning), else are an ``InputError`` naming them, unless
        ``skip_unknown``, which leaves them out (the model reads the text without
        them; ``skipped`` counts them).  ``per_char``: the bits of each character
        (None where not scored); ``lines``: per line, each owning its newline.
        ``progress(done, total)`` counts predicted tokens.
        """
        if not isinstance(text, str):
            raise InputError(f"score takes a str, not {type(text).__name__}")
        unknown = self.unknown_chars(text)
        kept, positions, count = text, None, 0
        if unknown:
            missing = np.isin(codepoints(text), np.array([ord(c) for c in unknown]))
            count = int(missing.sum())
            if skip_unknown:
                kept, positions = text.translate({ord(c): None for c in unknown}), np.flatnonzero(~missing)
            elif self.tokenizer.unk_id is not None:
                warnings.warn(f"{count:,} characters of the scored text ({len(unknown)} distinct) are not in the "
                              f"vocabulary and score as <unk>: {describe_chars(unknown, 5)}", stacklevel=2)
            else:
                raise InputError(unknown_message(unknown))
        ids = self.tokenizer.encode(kept, unknown="unk" if unknown and not skip_unknown else "error")
        lengths = self.tokenizer.char_lengths()
        spelled = np.ones(len(ids), np.int64) if lengths is None else np.asarray(lengths)[ids]
        if len(ids) < 2 or int(spelled[1:].sum()) == 0:
            left = f" ({count:,} left out)" if positions is not None else ""
            raise InputError(f"too little text to score: {len(kept)} character(s){left}; the first is the context "
                             "of the first prediction, so at least 2 are needed")
        result, nats = score_ids(self.module, ids, token_chars=lengths, progress=progress)
        bits = None
        if per_char or lines:
            bits = char_bits(ids, nats, lengths)
            if len(bits) != len(kept):
                raise RnnlmError(f"the tokenizer spelled {len(bits)} characters for a text of {len(kept)}")
            if positions is not None:  # back to the places of the whole text; the characters left out stay NaN
                full = np.full(len(text), np.nan)
                full[positions] = bits
                bits = full
        return TextScore(
            nats=result.nats, chars=result.chars, tokens=result.tokens, text_chars=len(text),
            context_chars=int(spelled[0]), skipped=count if positions is not None else 0,
            unk=count if unknown and positions is None else 0, unknown=tuple(unknown),
            per_char=tuple(None if np.isnan(b) else float(b) for b in bits) if per_char else None,
            lines=tuple(line_scores(text, bits)) if lines else None)

    def _encode(self, text: str | None, file: str | Path | None):
        """Ids of ``text`` or ``file``; characters outside the vocabulary map to ``<unk>`` (warned) or are an error."""
        if file is not None:
            text = read_text([Path(file)])
        if text is None:
            raise InputError("give a text or a file to evaluate")
        unknown = self.tokenizer.unknown_chars(text) if self.tokenizer.kind == "char" else []
        if unknown and self.tokenizer.unk_id is not None:
            missing = set(unknown)
            count = sum(1 for c in text if c in missing)
            warnings.warn(f"{count:,} characters of the evaluated text ({len(unknown)} distinct) are not in the "
                          f"vocabulary and map to <unk>: {describe_chars(unknown, 5)}", stacklevel=2)
        return self.tokenizer.encode(text, unknown="unk" if unknown and self.tokenizer.unk_id is not None else "error")

    def evaluate_split(self, split: str = "val", *, window: int | None = None, full: bool = False,
                       streams: int | None = None, progress=None) -> EvalResult:
        """Score the run's own validation or test split, re-read from the corpus files it names.

        The split is recomputed exactly as training made it (same tokenizer, same
        fractions).  On ``val`` the default is the scope training validated on
        (the header's ``val_scope``: the whole split, or a fixed sample of a big
        one), so it equals the checkpoint's stored ``val_bpc``; ``full`` scores
        the whole split.  ``streams`` cuts a whole split as :meth:`evaluate` does
        (a fixed sample is scored as its own segments).
        """
        index = {"train": 0, "val": 1, "test": 2}[split]
        val_file = self.meta["split"].get("val_file")
        if split == "val" and val_file:
            ids = self._encode(None, val_file)
        else:
            paths = [Path(p) for p in self.meta["corpus"]["paths"]]
            for path in paths:
                if not path.exists():
                    raise InputError(f"the run's corpus file {path} is gone; pass the text to evaluate as FILE")
            _, splits, info = encode_splits(paths, self.train_config, self.tokenizer, None)
            if not same_corpus(self.meta["corpus"], info.sha256):
                raise InputError("the corpus files changed since training; pass the text to evaluate as FILE")
            if index >= len(splits):
                raise InputError(f"this run has no {split} split (its split was {self.train_config.split})")
            ids = splits[index]
        scope = self.meta.get("val_scope") if split == "val" and not full else None
        return evaluate_scope(self.module, ids, scope_segments(ids, self.tokenizer, scope),
                              token_chars=self.tokenizer.char_lengths(), streams=self._streams(streams),
                              window=window, progress=progress)


def unknown_message(unknown: Sequence[str]) -> str:
    """What :meth:`LanguageModel.score` says of characters outside a vocabulary without ``<unk>``."""
    return f"characters not in the vocabulary: {describe_chars(unknown)} (--skip-unknown leaves them out of the score)"


def load(path: str | Path | None = None, *, latest: bool = False, device: str = "auto") -> LanguageModel:
    """Load a checkpoint file or run directory (→ best; ``latest`` → latest) onto ``device`` (auto: CUDA if any)."""
    return LanguageModel(*load_parts(path, latest=latest, device=device))