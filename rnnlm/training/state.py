"""What a checkpoint holds beyond the weights, and how a trainer is put back exactly.

Exact resume (bitwise on CPU with the same seed and threads) needs: weights,
optimizer moments, the schedule position (step, total steps, learning-rate
scale after NaN back-offs), the data position (a pure function of the step),
the carried TBPTT hidden state of every rank, and every rank's torch RNG
(dropout).  Under DDP rank 0 gathers the per-rank parts before writing.

Both functions take the values they read and return the values they make;
they know nothing of the trainer that calls them.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from rnnlm.core.checkpoint import optimizer_tensors, restore_optimizer

if TYPE_CHECKING:
    from rnnlm.evaluation.metrics import EvalResult

STATE_NAMES = ("h", "c")


@dataclass
class TrainState:
    """The mutable progress of a run; every field goes into the checkpoint header."""

    step: int = 0
    total_steps: int | None = None
    chars_seen: int = 0  # characters the training targets spelled, all ranks (a subword token spells several)
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    lr: float = 0.0
    lr_scale: float = 1.0
    dropout: float | None = None  # the rate auto dropout chose for the planned passes (None: the config's rate)
    weight_drop: float | None = None  # likewise DropConnect's and embedding dropout's (schedule.auto_rates)
    embed_drop: float | None = None
    warmup_steps: int | None = None  # the warmup in force, fixed once the total is first known
    anchor: list[float] | None = None  # [step, cosine progress] where the total last changed (schedule.cosine_progress)
    time_fitted: bool = False  # a time budget has been turned into a step count at least once
    bad_steps: int = 0
    best_val_bpc: float | None = None
    evals_since_best: int = 0
    curve: list[list[float]] = field(default_factory=list)


def _gather(tensor: torch.Tensor, world_size: int) -> list[torch.Tensor]:
    if world_size == 1:
        return [tensor]
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor)
    return parts


def build_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState,
                     hidden: tuple[torch.Tensor, ...], *, static_tensors: dict[str, torch.Tensor],
                     header: dict[str, Any], device: torch.device, world_size: int,
                     val: EvalResult | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and header for a run's current state (a collective call under DDP).

    ``static_tensors`` and ``header`` are what never changes during a run
    (the tokenizer's tensors; config, corpus, split, scope).
    """
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    optim, groups = optimizer_tensors(optimizer)
    tensors.update(optim)
    tensors.update(static_tensors)
    for name, h in zip(STATE_NAMES, hidden):
        for rank, part in enumerate(_gather(h.contiguous(), world_size)):
            tensors[f"hidden.{rank}.{name}"] = part
    rng = torch.get_rng_state()
    if device.type == "cuda":
        rng = torch.cat([rng, torch.cuda.get_rng_state(device)])
    for rank, part in enumerate(_gather(rng.to(device), world_size)):
        tensors[f"rng.{rank}.torch"] = part
    np_state = np.random.get_state()
    meta = dict(header)
    meta.update(
        optim_groups=groups,
        state=dataclasses.asdict(state),
        step=state.step,
        chars_seen=state.chars_seen,
        tokens_seen=state.tokens_seen,
        schedule={"step": state.step, "total_steps": state.total_steps},
        world_size=world_size,
        rng={"python": repr(random.getstate()), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]},
        metrics={
            "val_bpc": None if val is None else val.bpc,
            "val": None if val is None else val.to_dict(),
            "best_val_bpc": state.best_val_bpc,
            "curve": state.curve,
        },
    )
    return tensors, meta


def restore_training(optimizer: torch.optim.Optimizer, meta: dict[str, Any], tensors: dict[str, torch.Tensor], *,
                     fresh_hidden: tuple[torch.Tensor, ...], device: torch.device, rank: int, world_size: int,
                     seed: int) -> tuple[TrainState, tuple[torch.Tensor, ...]]:
    """Put the optimizer and RNG back; returns the run's progress and this rank's carried hidden state.

    ``fresh_hidden`` is the zero state of this run's shape: returned where the
    checkpoint holds none that fits this rank.
    """
    restore_optimizer(optimizer, tensors, meta["optim_groups"])
    names = {f.name for f in dataclasses.fields(TrainState)}
    stored = dict(meta["state"])
    stored.setdefault("tokens_seen", stored.get("chars_seen", 0))  # older headers counted tokens as chars_seen
    state = TrainState(**{k: v for k, v in stored.items() if k in names})
    if meta.get("world_size", 1) != world_size:
        # Another number of ranks cuts the text into other streams: no saved state belongs to this rank's
        # rows, so each stream restarts from zeros (never rank 0's state on every rank) with its own seed.
        torch.manual_seed(seed + rank + state.step)
        return state, fresh_hidden
    rng = tensors[f"rng.{rank}.torch"].cpu()
    cpu_len = torch.get_rng_state().numel()
    torch.set_rng_state(rng[:cpu_len].clone())
    if device.type == "cuda" and rng.numel() > cpu_len:
        torch.cuda.set_rng_state(rng[cpu_len:].clone(), device)
    hidden = tuple(
        tensors[f"hidden.{rank}.{name}"].to(device, torch.float32)  # older checkpoints may hold bf16
        for name in STATE_NAMES
        if f"hidden.{rank}.{name}" in tensors
    )
    if len(hidden) != len(fresh_hidden) or any(a.shape != b.shape for a, b in zip(hidden, fresh_hidden)):
        return state, fresh_hidden
    return state, hidden
