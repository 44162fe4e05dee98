"""Sampling: temperature, top-k, nucleus (top-p), repetition penalty, batched and streamed.

Per generated token only the model step and the sampling math run: the prompt
warms the hidden state in one forward call, ids stay on the device, and text is
decoded in chunks.  Filters that are off are skipped entirely, so ``top_p=1``
with ``top_k=0`` draws exactly what plain sampling draws for the same seed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError
from .model import RNNLM
from .tokenizer import StreamDecoder

FLUSH_EVERY_S = 0.02


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    length: int = 500
    num_samples: int = 1
    seed: int | None = None
    stop: str | None = None

    def __post_init__(self) -> None:
        t, p, r = self.temperature, self.top_p, self.repetition_penalty
        if not isinstance(t, (int, float)) or math.isnan(t) or t < 0:
            raise InputError(f"temperature must be ≥ 0 (0 = greedy), got {t}")
        if self.top_k < 0:
            raise InputError(f"top-k must be ≥ 0 (0 = off), got {self.top_k}")
        if math.isnan(p) or not 0 < p <= 1:
            raise InputError(f"top-p must be in (0, 1], got {p}")
        if math.isnan(r) or r <= 0:
            raise InputError(f"repetition penalty must be > 0, got {r}")
        if self.length <= 0:
            raise InputError(f"length must be positive, got {self.length}")
        if self.num_samples <= 0:
            raise InputError(f"num-samples must be positive, got {self.num_samples}")
        if self.stop == "":
            raise InputError("--stop must not be empty")


def next_ids(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator,
             seen: torch.Tensor | None = None) -> torch.Tensor:
    """Draw one id per row of ``logits`` (B, V) → (B,)."""
    logits = logits.float()
    if seen is not None and cfg.repetition_penalty != 1.0:
        penalised = torch.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
        logits = torch.where(seen, penalised, logits)  # (B, V)
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    if cfg.top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p >= cfg.top_p  # mass before this token already ≥ p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A private generator: sampling never touches (or depends on) torch's global RNG."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    return generator


@torch.inference_mode()
def generate_ids(model: RNNLM, prompt_ids: Sequence[int] | np.ndarray, cfg: SamplingConfig,
                 bos_id: int | None = None) -> Iterator[torch.Tensor]:
    """Yield (B,) ids, one tensor per step, B = ``cfg.num_samples``."""
    device = next(model.parameters()).device
    prompt = list(np.asarray(prompt_ids).reshape(-1).tolist())
    if not prompt:
        prompt = [bos_id if bos_id is not None else 0]
    generator = make_generator(cfg.seed, device)
    was_training = model.training
    model.eval()
    try:
        batch = cfg.num_samples
        ids = torch.tensor(prompt, device=device).unsqueeze(0).expand(batch, -1)  # (B, L)
        state = model.init_state(batch, device)
        logits, state = model(ids, state)
        logits = logits[:, -1]  # (B, V)
        seen = None
        if cfg.repetition_penalty != 1.0:
            seen = torch.zeros(batch, logits.shape[-1], dtype=torch.bool, device=device)
        for _ in range(cfg.length):
            nxt = next_ids(logits, cfg, generator, seen)  # (B,)
            if seen is not None:
                seen.scatter_(1, nxt.unsqueeze(1), True)
            yield nxt
            logits, state = model(nxt.unsqueeze(1), state)
            logits = logits[:, -1]
    finally:
        model.train(was_training)


def _truncate_at_stop(text: str, stop: str | None) -> tuple[str, bool]:
    if stop and (i := text.find(stop)) >= 0:
        return text[: i + len(stop)], True
    return text, False


def stream_text(model: RNNLM, tokenizer, prompt: str, cfg: SamplingConfig, echo: bool = True,
                bos_id: int | None = None) -> Iterator[str]:
    """Yield text as it is generated (one sample): the prompt first when echoed, then chunks.

    Ids are copied to the host and decoded every ~20 ms rather than per token;
    text that could still be the start of the stop string is held back.
    """
    prompt_ids = tokenizer.encode(prompt)
    if echo and prompt:
        yield prompt
    decoder = StreamDecoder(tokenizer)
    pending: list[torch.Tensor] = []
    held = ""
    last = time.perf_counter()
    keep = len(cfg.stop) - 1 if cfg.stop else 0
    steps = generate_ids(model, prompt_ids, cfg, bos_id)
    for done, nxt in enumerate(steps, 1):
        pending.append(nxt)
        if done < cfg.length and time.perf_counter() - last < FLUSH_EVERY_S:
            continue
        last = time.perf_counter()
        held += decoder.push(torch.cat(pending).tolist())
        pending.clear()
        held, stopped = _truncate_at_stop(held, cfg.stop)
        if stopped:
            yield held
            steps.close()
            return
        cut = len(held) - keep
        if cut > 0:
            yield held[:cut]
            held = held[cut:]
    tail, _ = _truncate_at_stop(held + decoder.flush(), cfg.stop)
    if tail:
        yield tail


def generate_texts(model: RNNLM, tokenizer, prompt: str, cfg: SamplingConfig, echo: bool = True,
                   bos_id: int | None = None) -> list[str]:
    """All samples as one batch; ids gathered on the device and copied once at the end."""
    steps = list(generate_ids(model, tokenizer.encode(prompt), cfg, bos_id))
    ids = torch.stack(steps, dim=1).cpu().numpy()  # (B, length)
    texts = []
    for row in ids:
        text, _ = _truncate_at_stop(tokenizer.decode(row), cfg.stop)
        texts.append((prompt if echo else "") + text)
    return texts
