"""One request's draw, in slices the server interleaves; the text joined from chat turns.

:class:`Generation` is :func:`rnnlm.generation.sample.generate_ids` (the sampler ``rnnlm generate`` runs, with
the request's own ``torch.Generator`` and hidden state) driven ~20 ms at a time, decoded per row and cut at the
request's stop strings.  So a request's text with a seed equals ``rnnlm generate`` with that seed, and
``n`` choices equal ``--num-samples n`` (drawn as one batch, as generate draws them), cut as OpenAI cuts: before
the first stop string to complete, which is left out.

Concurrency: the sampler switches process-wide oneDNN off around each one-token step
(:func:`rnnlm.generation.sample.without_onednn`), so two generations stepping at once in one process could run
each other's steps on the other kernel.  Every slice therefore runs under :data:`STEP_LOCK`: requests take turns,
slice by slice, and never share a step, a state or a random generator; no requests are batched together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import torch

from rnnlm.core.config import SamplingConfig
from rnnlm.data.tokenizers.char import StreamDecoder
from rnnlm.generation.sample import FLUSH_EVERY_S, encode_prompt, generate_ids

STEP_LOCK = threading.Lock()
"""Held while a model steps for a request (one process, one model call at a time; see the module's docstring)."""


def join_turns(turns: Sequence[str], *, close_last: bool) -> str:
    """Turns as one text, as ``rnnlm chat`` reads them: a turn that does not end a line is followed by a newline.

    ``close_last``: the last turn too (a chat reply starts on a fresh line, as in ``rnnlm chat``); without it the
    model continues the last turn's line (``llm -m NAME "ROMEO:"`` continues ``ROMEO:`` as ``rnnlm generate --prompt
    "ROMEO:"`` does).  Empty turns add nothing.
    """
    parts: list[str] = []
    for i, turn in enumerate(turns):
        parts.append(turn)
        if turn and not turn.endswith("\n") and (close_last or i < len(turns) - 1):
            parts.append("\n")
    return "".join(parts)


def encode(lm, text: str) -> np.ndarray:
    """The prompt's ids, as generate encodes them (unknown characters: ``InputError`` naming them, or ``<unk>``)."""
    return encode_prompt(lm.tokenizer, text)


def _first_stop(text: str, new_from: int, stops: Sequence[str]) -> int | None:
    """Where the first stop string to complete in ``text`` starts, among those ending after ``new_from``
    (earlier text was searched already); the one that completes first wins, then the one that starts first."""
    best: tuple[int, int] | None = None
    for stop in stops:
        at = text.find(stop, max(0, new_from - len(stop) + 1))
        if at >= 0 and (best is None or (at + len(stop), at) < best):
            best = (at + len(stop), at)
    return None if best is None else best[1]


class Generation:
    """``cfg.num_samples`` rows of text drawn for one request, advanced a slice at a time by :meth:`advance`.

    ``texts``: each row's text so far (stop strings left out); ``finish``: None while a row runs, then
    ``"stop"`` or ``"length"``; ``tokens``: tokens each row used (up to and including its stop);
    ``steps``: sampler steps taken (one per token, for all rows at once).  Not thread-safe by itself: the server
    calls :meth:`advance` and :meth:`close` from one request at a time, and both hold :data:`STEP_LOCK`.
    """

    def __init__(self, lm, prompt_ids: np.ndarray, cfg: SamplingConfig, stops: Sequence[str] = (), *,
                 slice_s: float = FLUSH_EVERY_S) -> None:
        self.cfg = cfg.with_seed()
        self.prompt_tokens = len(prompt_ids)
        self.stops = tuple(stops)
        self.slice_s = slice_s
        n = self.cfg.num_samples
        self.texts = [""] * n
        self.finish: list[str | None] = [None] * n
        self.tokens = [0] * n
        self.steps = 0
        self._decoders = [StreamDecoder(lm.tokenizer) for _ in range(n)]
        self._held = [""] * n
        self._keep = max((len(s) for s in self.stops), default=1) - 1  # characters that may yet start a stop
        # bos: the newline that primes an empty prompt, exactly as LanguageModel.generate primes it.
        self._steps = generate_ids(lm.module, prompt_ids, self.cfg, lm.device, lm.bos_id)

    @property
    def done(self) -> bool:
        return all(f is not None for f in self.finish)

    def advance(self) -> list[str]:
        """Step for ~``slice_s`` seconds (at least one token) and return each row's new text ("" for none)."""
        with STEP_LOCK:
            return self._advance()

    def close(self) -> None:
        """Stop drawing (a finished, cancelled or timed-out request); the sampler puts the model's mode back."""
        with STEP_LOCK:
            self._steps.close()
            self.finish = [f or "cancelled" for f in self.finish]

    def _advance(self) -> list[str]:
        n = len(self.finish)
        if self.done:
            return [""] * n
        pending: list[torch.Tensor] = []
        start = time.perf_counter()
        exhausted = False
        while True:
            try:
                pending.append(next(self._steps))  # (B,)
            except StopIteration:
                exhausted = True
                break
            if self.steps + len(pending) >= self.cfg.length:
                exhausted = True
                break
            if time.perf_counter() - start >= self.slice_s:
                break
        self.steps += len(pending)
        rows = torch.stack(pending, dim=1).tolist() if pending else [[] for _ in range(n)]  # (B, k)
        deltas = [self._row(r, ids, exhausted) for r, ids in enumerate(rows)]
        if self.done:
            self._steps.close()
        return deltas

    def _row(self, r: int, ids: list[int], exhausted: bool) -> str:
        if self.finish[r] is not None:
            return ""
        decoder, held = self._decoders[r], self._held[r]
        if self.stops:
            for token in ids:
                self.tokens[r] += 1
                piece = decoder.push([token])
                if piece:
                    held += piece
                    at = _first_stop(held, len(held) - len(piece), self.stops)
                    if at is not None:
                        held, self.finish[r] = held[:at], "stop"
                        break
        else:
            self.tokens[r] += len(ids)
            held += decoder.push(ids)
        if self.finish[r] is None and exhausted:
            tail = decoder.flush()
            held += tail
            at = _first_stop(held, len(held) - len(tail), self.stops) if tail and self.stops else None
            held, self.finish[r] = (held, "length") if at is None else (held[:at], "stop")
        if self.finish[r] is not None:
            out, held = held, ""
        else:
            cut = max(0, len(held) - self._keep)
            out, held = held[:cut], held[cut:]
        self._held[r] = held
        self.texts[r] += out
        return out


__all__ = ["Generation", "STEP_LOCK", "join_turns", "encode"]
