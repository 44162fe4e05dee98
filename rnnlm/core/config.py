"""Frozen configuration objects, validated on construction, stored in every checkpoint.

One dataclass per concern: ``ModelConfig`` fixes the network's shape (a
checkpoint needs it to rebuild the module), ``TrainConfig`` the optimisation
(needed to resume), ``SamplingConfig`` how text is drawn (its defaults are the
one home of the sampling flags' defaults: the CLI, ``LanguageModel.generate``
and the chat session read them from here).  Both convert to and from plain dicts so the checkpoint
header holds JSON, never pickled objects.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rnnlm.core.errors import InputError

CELLS = ("rnn", "lstm", "gru")
TOKENIZERS = ("char", "bpe", "unigram")
PRECISIONS = ("auto", "fp32", "bf16")
RUNS_ROOT = Path("checkpoints")  # where runs go by default, and where commands without a checkpoint look
DEVICES = ("auto", "cpu", "cuda")  # --device everywhere: auto takes CUDA when torch sees a GPU
CHAT_REPLY_LENGTH = 300  # chat's --length: a turn is shorter than a generated text
# The budget when none is given (docs/developer/rules.md), and the default train,val,test fractions.
DEFAULT_MAX_TIME_S = 600.0
DEFAULT_SPLIT = (0.9, 0.05, 0.05)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}")


def _fraction(name: str, value: float, upper_open: bool = True) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value
    ok = ok and (value < 1 if upper_open else value <= 1)
    if not ok:
        raise InputError(f"{name} must be in [0, 1), got {value!r}")


def _from_dict(cls, data: dict[str, Any]):
    """Build ``cls`` from a dict, ignoring unknown keys (newer minor versions add fields).

    A field in the class's ``ADDED_OFF`` that the dict lacks takes its "off"
    value, not the default: a checkpoint written before a technique existed
    resumes without it, as it was trained.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**{**getattr(cls, "ADDED_OFF", {}), **kwargs})


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network: embedding → ``num_layers`` × cell → dropout → linear."""

    cell: str = "lstm"
    vocab_size: int = 65
    embed_size: int = 64
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float | None = None  # None = auto: the trainer picks it from the planned passes over the data
    tie_weights: bool = False
    # DropConnect on the recurrent matrices (one mask per training step) and embedding dropout (whole
    # characters): None = auto, fitted with dropout (training/schedule.py, auto_regularisation).
    weight_drop: float | None = 0.0
    embed_drop: float | None = 0.0

    ADDED_OFF: ClassVar[dict[str, Any]] = {"weight_drop": 0.0, "embed_drop": 0.0}

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise InputError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        for name in ("vocab_size", "embed_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "weight_drop", "embed_drop"):
            if getattr(self, name) is not None:
                _fraction(name, getattr(self, name))
        if self.tie_weights and self.embed_size != self.hidden_size:
            raise InputError(
                f"--tie needs --embed equal to --hidden (got {self.embed_size} and {self.hidden_size})"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and budget.  Defaults were chosen by measurement (see docs/defaults.md, BENCHMARKS.md).

    Budgets: any mix of ``max_time_s``, ``max_steps`` and ``epochs``; the first
    reached stops.  A time budget is turned into a step count after
    ``calibrate_steps`` steps so the learning-rate schedule is a function of the
    step (docs/developer/rules.md, "A time budget becomes a step budget").
    """

    batch_size: int = 64
    bptt: int = 64
    lr: float = 8e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.1
    warmup_steps: int = 100
    clip: float = 1.0
    max_time_s: float | None = DEFAULT_MAX_TIME_S
    max_steps: int | None = None
    epochs: float | None = None
    calibrate_steps: int = 30
    eval_every_s: float | None = None  # None: auto, at least 30 s and validation ≤ 5% of the time (trainer.py)
    eval_streams: int = 32
    patience: int = 0
    split: tuple[float, ...] = DEFAULT_SPLIT
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    tokenizer: str = "char"
    vocab_size: int = 0
    min_char_count: int = 0
    save_every_s: float = 300.0
    keep: int = 0
    max_bad_steps: int = 5
    log_every_s: float = 2.0
    # The share of carried streams that restart from a zero state at each window (staggered, so every window
    # has the same number): a model that meets a zero state only at the corpus's start can fail from one.
    # One in 16 cures the 1024x1 collapse at no cost at the default sizes (docs/defaults.md).
    state_reset: float = 0.0625

    ADDED_OFF: ClassVar[dict[str, Any]] = {"state_reset": 0.0}

    def __post_init__(self) -> None:
        for name in ("batch_size", "bptt", "warmup_steps", "calibrate_steps", "eval_streams", "max_bad_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "clip", "save_every_s", "log_every_s"):
            _positive(name, getattr(self, name))
        if self.eval_every_s is not None:
            _positive("eval_every", self.eval_every_s)
        _fraction("min_lr_ratio", self.min_lr_ratio, upper_open=False)
        _fraction("state_reset", self.state_reset, upper_open=False)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(f"weight_decay must be ≥ 0, got {self.weight_decay!r}")
        if self.max_time_s is not None:
            _positive("max_time", self.max_time_s)
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps <= 0):
            raise InputError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if self.epochs is not None:
            _positive("epochs", self.epochs)
        if self.max_time_s is None and self.max_steps is None and self.epochs is None:
            raise InputError("give at least one budget: max_time, max_steps or epochs")
        for name in ("patience", "keep", "min_char_count", "vocab_size", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InputError(f"{name} must be a non-negative integer, got {value!r}")
        if len(self.split) not in (2, 3) or any(not (0 < f < 1) for f in self.split) or sum(self.split) > 1 + 1e-9:
            raise InputError(f"split must be 2 or 3 fractions in (0, 1) summing to ≤ 1, got {self.split!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise InputError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        if self.tokenizer not in TOKENIZERS:
            raise InputError(f"unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        if self.tokenizer != "char" and self.vocab_size <= 0:
            raise InputError(f"--tokenizer {self.tokenizer} needs --vocab-size N (e.g. 1000)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)




def is_finite_number(value: object) -> bool:
    """An int or float, not a bool, not inf or NaN: what a numeric setting may be (shared with the server)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value: object) -> bool:
    """An int that is not a bool (Python counts True as the int 1; a JSON `true` must not pass for a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingConfig:
    """How to draw text; ``length`` counts generated tokens (characters for char models)."""

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
        if not is_finite_number(t) or t < 0:
            raise InputError(f"temperature must be ≥ 0 (0 = greedy), got {t}")
        if not is_count(self.top_k) or self.top_k < 0:
            raise InputError(f"top-k must be an integer ≥ 0 (0 = off), got {self.top_k}")
        if not is_finite_number(p) or not 0 < p <= 1:
            raise InputError(f"top-p must be in (0, 1], got {p}")
        if not is_finite_number(r) or r <= 0:
            raise InputError(f"repetition penalty must be > 0 (1 = off), got {r}")
        if not is_count(self.length) or self.length <= 0:
            raise InputError(f"length must be a positive integer, got {self.length}")
        if not is_count(self.num_samples) or self.num_samples <= 0:
            raise InputError(f"num-samples must be a positive integer, got {self.num_samples}")
        if self.seed is not None and (not is_count(self.seed) or not 0 <= self.seed < 2**63):
            raise InputError(f"seed must be an integer in [0, 2^63), got {self.seed}")
        if self.stop == "":
            raise InputError("stop string must not be empty")

    def with_seed(self) -> SamplingConfig:
        """This config with a concrete seed (from ``os.urandom`` when none was given), so a caller
        can report the seed of an unseeded run and the run can be repeated."""
        if self.seed is not None:
            return self
        return dataclasses.replace(self, seed=int.from_bytes(os.urandom(8), "little") >> 1)


__all__ = ["ModelConfig", "TrainConfig", "SamplingConfig", "CELLS", "TOKENIZERS", "PRECISIONS", "DEVICES",
           "CHAT_REPLY_LENGTH", "DEFAULT_MAX_TIME_S", "DEFAULT_SPLIT", "RUNS_ROOT", "is_count", "is_finite_number"]
