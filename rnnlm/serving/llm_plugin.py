"""simonw's ``llm`` runs rnnlm checkpoints in its own process: ``llm models`` lists them, ``llm -m NAME`` samples.

Loaded through the ``llm`` entry-point group (pyproject.toml), so it is there wherever ``rnnlm-toolkit`` is
installed beside ``llm`` (docs/llm.md).  ``llm`` loads its plugins on every command, so listing is a directory
scan (:mod:`rnnlm.serving.catalog`: the runs under ``./checkpoints`` and ``$RNNLM_CHECKPOINTS``) and torch is
imported only when a model first writes.  A model continues the prompt as ``rnnlm generate --prompt`` does (the
same sampler, the same text for a seed); in a conversation (``llm -c``) the earlier turns come first, joined as
``rnnlm chat`` joins them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import llm
from pydantic import Field

from rnnlm.core.config import SamplingConfig
from rnnlm.serving.catalog import discover

_S = SamplingConfig()


@llm.hookimpl
def register_models(register):
    for name, path in discover().items():
        register(RnnlmModel(name, path))


class RnnlmModel(llm.Model):
    """One checkpoint (a run directory or a ``.safetensors`` file) as an ``llm`` model, loaded on first use."""

    can_stream = True

    class Options(llm.Options):
        temperature: float | None = Field(default=None, ge=0,
                                          description=f"Softmax temperature; 0 = greedy (default {_S.temperature})")
        top_k: int | None = Field(default=None, ge=0,
                                  description="Sample only from the k most likely tokens (0 = off, the default)")
        top_p: float | None = Field(default=None, gt=0, le=1,
                                    description="Nucleus sampling: the smallest set with this much probability "
                                                "(1 = off, the default)")
        seed: int | None = Field(default=None, ge=0, lt=2**63,
                                 description="Seed: the same seed gives the text `rnnlm generate --seed` gives")
        length: int | None = Field(default=None, ge=1,
                                   description=f"Tokens to write, characters for char models (default {_S.length})")
        stop: str | None = Field(default=None, min_length=1,
                                 description="Stop once this string has been written (it ends the text)")
        repetition_penalty: float | None = Field(default=None, gt=0,
                                                 description="Penalise tokens already written (>1 discourages "
                                                             "repeats; 1 = off, the default)")

    def __init__(self, model_id: str, path: Path) -> None:
        self.model_id = model_id
        self.path = Path(path)
        self._lm = None
        self._loading = threading.Lock()

    def __str__(self) -> str:
        return f"rnnlm: {self.model_id}"

    def load(self):
        """The :class:`rnnlm.generation.language_model.LanguageModel`, loaded once."""
        with self._loading:
            if self._lm is None:
                from rnnlm.generation.language_model import load

                self._lm = load(self.path)
            return self._lm

    def execute(self, prompt, stream, response, conversation=None) -> Iterator[str]:
        from rnnlm.core.errors import RnnlmError
        from rnnlm.serving.engine import join_turns

        options = prompt.options
        settings = {name: getattr(options, name) for name in
                    ("length", "temperature", "top_k", "top_p", "seed", "stop", "repetition_penalty")}
        try:
            text = join_turns(_turns(prompt, conversation), close_last=False)
            chunks = _one_at_a_time(self.load().stream(text, echo=False,
                                                       **{k: v for k, v in settings.items() if v is not None}))
            if stream:
                yield from chunks
            else:
                yield "".join(chunks)
        except RnnlmError as exc:
            raise llm.ModelError(str(exc)) from None


def _one_at_a_time(chunks: Iterator[str]) -> Iterator[str]:
    """The sampler's chunks, each drawn under :data:`rnnlm.serving.engine.STEP_LOCK`: responses iterated from several
    threads of one process (llm's Python API) take turns, as the server's requests do (the sampler switches
    process-wide oneDNN around each LSTM step)."""
    from rnnlm.serving.engine import STEP_LOCK

    try:
        while True:
            with STEP_LOCK:
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        with STEP_LOCK:
            chunks.close()


def _turns(prompt, conversation) -> list[str]:
    """The texts of the conversation so far and of this prompt, in order (system prompt first)."""
    messages = getattr(prompt, "messages", None)  # llm 0.27+: the whole chain, this turn included
    if messages is not None:
        turns = []
        for message in messages:
            texts = []
            for part in message.parts:
                if type(part).__name__ != "TextPart":
                    raise llm.ModelError(f"rnnlm models read text only, not a {type(part).__name__} "
                                         f"({message.role} message)")
                texts.append(part.text)
            turns.append("".join(texts))
        return turns
    turns = []  # older llm: earlier responses from the conversation, then this prompt
    for earlier in getattr(conversation, "responses", None) or []:
        turns += [earlier.prompt.system or "", earlier.prompt.prompt or "", earlier.text()]
    return [t for t in [*turns, prompt.system or "", prompt.prompt or ""] if t]


__all__ = ["RnnlmModel", "register_models"]
