"""Beam search: the most probable continuation the model can find, not a random draw.

Sampling at a temperature trades typos for variety; beam search keeps the
``beam`` best partial texts at every step instead, which is the classic answer
to "can it make fewer typos?" (char-rnn #138, torch-rnn #113).  It is
deterministic: no generator, no temperature.

Scores are mean log-probabilities per *character* (total natural-log
probability of the generated text ÷ its length in characters), so hypotheses
of different lengths (a stop string ends some early; subword tokens spell
different numbers of characters) compare fairly.  For a char model at equal
length this ranks exactly as the total log-probability does, and beam 1 is
greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rnnlm.core.device import model_device
from rnnlm.core.errors import InputError
from rnnlm.generation.sample import Tokenizer, encode_prompt, prompt_tensor, step_context


@dataclass(frozen=True)
class Hypothesis:
    """One finished beam: its generated text (cut after the stop string), ids, and score."""

    text: str
    ids: list[int]
    logprob: float  # total natural-log probability of the generated text
    chars: int

    @property
    def logprob_per_char(self) -> float:
        return self.logprob / max(self.chars, 1)


@torch.inference_mode()
def beam_search(model: nn.Module, tokenizer: Tokenizer, prompt: str, *, beam: int, length: int,
                num_results: int = 1, stop: str | None = None, bos_id: int | None = None) -> list[Hypothesis]:
    """The ``num_results`` best of ``beam`` hypotheses of ``length`` tokens continuing ``prompt``, best first.

    All live hypotheses step as one (beam, 1) batch, their recurrent states
    reordered to follow their parents.  A hypothesis whose text contains
    ``stop`` is finished there; the search ends after ``length`` tokens or
    once ``beam`` hypotheses have finished.
    """
    if not isinstance(beam, int) or isinstance(beam, bool) or beam < 1:
        raise InputError(f"beam must be a positive integer, got {beam!r}")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise InputError(f"length must be a positive integer, got {length!r}")
    if not 1 <= num_results <= beam:
        raise InputError(f"beam search returns at most its {beam} beams; got num-samples {num_results}")
    if stop == "":
        raise InputError("stop string must not be empty")
    device = model_device(model)
    ids = prompt_tensor(encode_prompt(tokenizer, prompt), bos_id, model.config.vocab_size, device)  # (1, L)
    lengths = tokenizer.char_lengths()
    char_len = torch.ones(model.config.vocab_size, device=device) if lengths is None else \
        torch.as_tensor(np.asarray(lengths), dtype=torch.float32, device=device)  # (V,)
    one_step = step_context(model, device)
    was_training = model.training
    model.eval()
    try:
        logits, state = model(ids, model.init_state(1, device))  # (1, L, V)
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B, V)
        total = torch.zeros(1, device=device)  # (B,) log-probability so far
        chars = torch.zeros(1, device=device)  # (B,) characters so far
        seqs = torch.empty((1, 0), dtype=torch.long, device=device)  # (B, t)
        finished: list[Hypothesis] = []
        for step in range(length):
            vocab = logp.shape[-1]
            cand_total = (total[:, None] + logp).flatten()  # (B·V,)
            cand_chars = (chars[:, None] + char_len[None, :]).flatten()  # (B·V,)
            top = torch.topk(cand_total / cand_chars.clamp(min=1), min(beam, cand_total.numel())).indices  # (B',)
            parent, token = top // vocab, top % vocab
            total, chars = cand_total[top], cand_chars[top]
            seqs = torch.cat([seqs[parent], token[:, None]], dim=1)  # (B', t+1)
            state = tuple(s[:, parent] for s in state)  # (layers, B', H) each
            if stop is not None:
                live = _finish_stopped(tokenizer, seqs, total, chars, stop, finished)  # (B',) bool
                total, chars, seqs, token = total[live], chars[live], seqs[live], token[live]
                state = tuple(s[:, live] for s in state)
                if len(finished) >= beam or not len(seqs):
                    break
            if step + 1 < length:
                with one_step():
                    logits, state = model(token[:, None], state)  # (B, 1, V)
                logp = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B, V)
    finally:
        model.train(was_training)
    if len(finished) < beam:  # the live hypotheses compete with the finished ones
        finished += [Hypothesis(tokenizer.decode(row), row, float(t), int(c))
                     for row, t, c in zip(seqs.tolist(), total.tolist(), chars.tolist())]
    finished.sort(key=lambda h: h.logprob_per_char, reverse=True)
    return finished[:num_results]


def _finish_stopped(tokenizer: Tokenizer, seqs: torch.Tensor, total: torch.Tensor, chars: torch.Tensor,
                    stop: str, finished: list[Hypothesis]) -> torch.Tensor:
    """Move hypotheses whose text now contains ``stop`` to ``finished`` (cut right after it); the rest stay live.

    The last token can complete the stop string anywhere inside its characters,
    so the whole text is decoded: no cost that matters next to a model step.
    """
    live = torch.ones(len(seqs), dtype=torch.bool)
    for i, (row, t, c) in enumerate(zip(seqs.tolist(), total.tolist(), chars.tolist())):
        text = tokenizer.decode(row)
        cut = text.find(stop)
        if cut >= 0:
            live[i] = False
            finished.append(Hypothesis(text[: cut + len(stop)], row, float(t), int(c)))
    return live.to(seqs.device)

