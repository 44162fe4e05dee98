"""``--size auto``: the model size a budget buys on this machine, chosen from measurements.

The rule is a lookup, not a guess.  ``scripts/sweep.py`` trained every size of
``GRID`` on two corpora for fixed amounts of training (characters seen) and
stored the validation bpc in ``sizes.json`` beside this module.  For a new run:

1. each candidate's throughput is measured here, on the real device with the
   real vocabulary, by a few training steps of a throwaway model inside the
   budget clock (``PROBE_SHARE`` of it at most); on a machine that runs like
   the sweep's, all rates are then one fitted machine-speed factor × the sweep's
   measured speed ratios (``estimate_rates``);
2. the characters each size would see in the remaining time follow
   (``TRAIN_SHARE`` of it runs training steps; the rest validates and saves);
3. each size's measured bpc curve is read at that many characters (linear in
   log characters between sweep points; below the first along the first
   segment down to ÷ ``EXTRAPOLATE``; flat beyond the last: ``read_curve``), and
   between the two corpora by log training-set size (clamped outside them);
4. the lowest prediction wins; within ``TIE_BPC`` the cheaper size does.

A step or epoch budget fixes the characters up front (the same for every size),
so the choice is deterministic and nothing is probed.  Batch and BPTT stay at
their defaults: the sweep did not vary them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import InputError
from .summary import GATES, model_params

GRID_HIDDEN = (256, 384, 512, 768, 1024)
GRID_LAYERS = (1, 2)
PROBE_SHARE = 0.03
TRAIN_SHARE = 0.9
EXTRAPOLATE = 3.0
TIE_BPC = 0.005
SPEED_BAND = 0.35
TABLE_PATH = Path(__file__).with_name("sizes.json")
# The probe times at least this much of each size (after one warm-up step that builds its kernels).
PROBE_MIN_S = 0.25


@dataclass(frozen=True, order=True)
class Size:
    hidden: int
    layers: int

    def __str__(self) -> str:
        return f"{self.hidden}x{self.layers}"

    @classmethod
    def parse(cls, text: str) -> Size:
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
        if not match or int(match[1]) <= 0 or int(match[2]) <= 0:
            raise InputError(f"--size must be auto or HIDDENxLAYERS (e.g. 512x1), got {text!r}")
        return cls(int(match[1]), int(match[2]))


GRID = tuple(Size(h, n) for n in GRID_LAYERS for h in GRID_HIDDEN)


def train_chars(ids, token_chars) -> int:
    """Characters in a training split of ids (one per id for the character tokenizer)."""
    return len(ids) if token_chars is None else int(token_chars[ids].sum())


def step_cost(size: Size, cell: str, vocab: int, embed: int) -> int:
    """Parameters a step multiplies through, less the embedding lookup: a proxy for its FLOPs."""
    return model_params(cell, size.layers, size.hidden, vocab, embed) - vocab * embed


def memory_bytes(size: Size, cell: str, vocab: int, embed: int, batch: int, bptt: int) -> int:
    """Rough training footprint: weights, gradients and AdamW's two moments, plus the unrolled activations."""
    params = model_params(cell, size.layers, size.hidden, vocab, embed)
    activations = batch * bptt * size.layers * size.hidden * (GATES[cell] + 2) * 4 * 2
    return params * 16 + activations


def available_memory(device: torch.device) -> int:
    """Bytes free for a new run: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 1 << 34


def measure_throughput(
    sizes: list[Size],
    make_step: Callable[[Size], Callable[[], int]],
    cost: Callable[[Size], int],
    limit_s: float,
    clock: Callable[[], float],
    min_s: float = PROBE_MIN_S,
) -> dict[Size, float]:
    """Training characters per second of sizes, cheapest first, within ``limit_s`` seconds.

    ``make_step(size)`` returns a function that runs one training step of a
    fresh model of that size and returns the characters it trained on.  Each
    size gets one warm-up step (it builds the kernels: oneDNN primitives, cuDNN
    plans) and then timed steps for at least ``min_s``.  Returns the throughput
    of the sizes timed, in the order they were timed.  The next size is skipped when its
    expected probe time would pass the limit: the last size's steady step time
    scaled by their cost ratio, for its warm-up and timed steps, with a 50%
    margin; the first size's own time is not a guide (it also pays the
    process's one-off start-up: 2 s against 0.35 s of steps for a 256×1 LSTM).
    """
    start = clock()
    rates: dict[Size, float] = {}
    step_s: dict[Size, float] = {}
    for size in sorted(sizes, key=cost):
        if rates:
            last = next(reversed(rates))
            guess = step_s[last] * cost(size) / cost(last)
            expected = 1.5 * guess * (1 + max(1, math.ceil(min_s / guess)))
            if clock() - start + expected > limit_s:
                break
        step = make_step(size)
        step()
        t0, chars, steps = clock(), 0, 0
        while steps == 0 or clock() - t0 < min_s:
            chars += step()
            steps += 1
        elapsed = max(clock() - t0, 1e-9)
        rates[size], step_s[size] = chars / elapsed, elapsed / steps
        del step
    return rates


def probe(model_cfg, config, batches, device: torch.device, autocast_dtype, token_chars, sizes: list[Size],
          limit_s: float, clock: Callable[[], float], min_s: float = PROBE_MIN_S) -> dict[Size, float]:
    """``measure_throughput`` with real training steps: a throwaway ``Trainer`` per size on the run's batches."""
    from .model import RNNLM
    from .trainer import Trainer

    probe_config = config.replace(max_time_s=None, max_steps=1 << 30, epochs=None)

    def make_step(size: Size) -> Callable[[], int]:
        net = RNNLM(dataclasses.replace(model_cfg, hidden_size=size.hidden, num_layers=size.layers)).to(device)
        trainer = Trainer(net, probe_config, batches, batches.ids[:2], device, Path(os.devnull), {},
                          token_chars=token_chars, autocast_dtype=autocast_dtype)

        def step() -> int:
            before = trainer.state.chars_seen
            trainer.train_step()  # its one host read per step also waits for the GPU
            return trainer.state.chars_seen - before
        return step

    cost = lambda size: step_cost(size, model_cfg.cell, model_cfg.vocab_size, model_cfg.embed_size)  # noqa: E731
    return measure_throughput(sizes, make_step, cost, limit_s, clock, min_s)


@dataclass
class SweepTable:
    """The sweep's measurements: per corpus, per size, (characters seen, validation bpc) points."""

    machine: str
    corpora: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path | None = None) -> SweepTable:
        data = json.loads((path or TABLE_PATH).read_text())
        return cls(machine=data["machine"], corpora=data["corpora"])

    @staticmethod
    def curve(corpus: dict[str, Any], size: Size) -> list[tuple[float, float]]:
        """(characters seen, best validation bpc) of the size's grid runs; seeds of one budget averaged."""
        by_chars: dict[float, list[float]] = {}
        for run in corpus["runs"]:
            if run["mode"] == "grid" and run["size"] == str(size):
                by_chars.setdefault(run["chars_seen"], []).append(run["best_val_bpc"])
        return [(chars, sum(v) / len(v)) for chars, v in sorted(by_chars.items())]

    def relative_speed(self, size: Size, known: Size) -> float | None:
        """Throughput of ``size`` over that of ``known`` as the sweep measured them (mean over its corpora)."""
        ratios = [c["chars_per_s"][str(size)] / c["chars_per_s"][str(known)] for c in self.corpora
                  if str(size) in c.get("chars_per_s", {}) and str(known) in c.get("chars_per_s", {})]
        return sum(ratios) / len(ratios) if ratios else None

    def predict(self, size: Size, chars: float, train_chars: float) -> float | None:
        """Validation bpc the sweep predicts for ``size`` after ``chars`` training characters, or None."""
        by_corpus = []
        for corpus in sorted(self.corpora, key=lambda c: c["train_chars"]):
            value = read_curve(self.curve(corpus, size), chars)
            if value is not None:
                by_corpus.append((math.log(corpus["train_chars"]), value))
        if not by_corpus:
            return None
        return interpolate(by_corpus, math.log(max(train_chars, 1)), extend=False)


def interpolate(points: list[tuple[float, float]], x: float, extend: bool) -> float:
    """Piecewise-linear in x through sorted points; outside them along the end segment or flat."""
    if len(points) == 1:
        return points[0][1]
    if x <= points[0][0]:
        (x0, y0), (x1, y1) = points[0], points[1]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if extend else y0
    if x >= points[-1][0]:
        (x0, y0), (x1, y1) = points[-2], points[-1]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if extend else y1
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    raise AssertionError("unreachable: x lies between the first and last point")


def read_curve(points: list[tuple[float, float]], chars: float) -> float | None:
    """A size's bpc at ``chars`` characters: its measured curve in log characters, never better than measured.

    Below the first point the first segment goes on (fewer characters, a worse
    prediction) to ÷ ``EXTRAPOLATE``, flat after; beyond the last point the
    curve stays flat.  Extending the end segment upwards turned one outlier
    into nonsense: tinyshakespeare's 2-minute 1024x1 at 8e-3 validated at 3.71
    bpc (its training loss said 2.2: from a zero state, 4 of its 32
    validation streams fell into an attractor at 16-17 bpc), and the segment
    from there to its 10-minute 1.925 predicted 0.705 bpc at 30 minutes.  Flat
    means a budget beyond the sweep chooses by the longest measured runs,
    which the sweep's own long runs, not an extrapolation, should improve on.
    """
    if not points:
        return None
    logs = [(math.log(c), bpc) for c, bpc in points]
    x = min(max(math.log(max(chars, 1.0)), logs[0][0] - math.log(EXTRAPOLATE)), logs[-1][0])
    return interpolate(logs, x, extend=True)


@dataclass
class Choice:
    """The chosen size, why, and the figures behind it (stored in config.json as ``size``)."""

    size: Size
    mode: str  # "auto" or "fixed"
    reason: str
    predicted_bpc: dict[str, float] = field(default_factory=dict)
    chars: dict[str, float] = field(default_factory=dict)
    chars_per_s: dict[str, float] = field(default_factory=dict)
    probed: list[str] = field(default_factory=list)
    probe_s: float = 0.0
    table_machine: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"size": str(self.size), "mode": self.mode, "reason": self.reason,
                "predicted_bpc": self.predicted_bpc, "chars": self.chars, "chars_per_s": self.chars_per_s,
                "probed": self.probed, "probe_s": self.probe_s, "table_machine": self.table_machine}


def count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else f"{n:.0f}"


def choose(
    table: SweepTable,
    candidates: list[Size],
    chars: dict[Size, float],
    train_chars: int,
    budget_text: str,
    rates: dict[Size, float] | None = None,
) -> Choice:
    """The candidate with the lowest predicted bpc at its characters (ties: the cheaper, listed first)."""
    predicted = {s: table.predict(s, chars[s], train_chars) for s in candidates}
    ranked = sorted((p, i, s) for i, (s, p) in enumerate(predicted.items()) if p is not None)
    if not ranked:
        raise InputError("--size auto: the sweep table has no measurement for these sizes; give --size HxL")
    best_bpc = ranked[0][0]
    size = min((i, s) for p, i, s in ranked if p <= best_bpc + TIE_BPC)[1]
    runners = ", ".join(f"{s} {p:.3f}" for p, _, s in ranked[:4] if s != size)
    speed = f" at {rates[size]:,.0f} chars/s" if rates else ""
    tie = f", within {TIE_BPC} of {ranked[0][2]}'s: the cheaper" if ranked[0][2] != size else ""
    reason = (f"{size}: predicted {predicted[size]:.3f} bpc{tie} after {count(chars[size])} training characters "
              f"({budget_text}{speed}; corpus {count(train_chars)} characters); next: {runners}")
    return Choice(size=size, mode="auto", reason=reason,
                  predicted_bpc={str(s): round(p, 4) for s, p in predicted.items() if p is not None},
                  chars={str(s): round(c) for s, c in chars.items()},
                  chars_per_s={str(s): round(r, 1) for s, r in (rates or {}).items()},
                  table_machine=table.machine)


def estimate_rates(rates: dict[Size, float], last: Size, sizes: list[Size], table: SweepTable,
                   cost: Callable[[Size], int]) -> bool:
    """Rates for every size from the probe's; True when they were steadied by the sweep's speed ratios.

    The probe times each size for a fraction of a second: ±12% per size
    against the sweep's figures on a quiet 2-core machine, enough to flip a
    near-tie.  Put on the last probed size's scale by the sweep's measured
    speed ratios, every probed size implies a speed for that one; when all
    implied speeds lie within ``SPEED_BAND`` of their geometric mean (a machine
    like the sweep's, faster or slower as a whole; the band is wide because on
    the sweep's own machine a quarter-second reading of the cheapest size ran
    20-30% above its 12-second figure), every size takes that mean
    × its sweep ratio: one machine-speed factor fitted to all probed sizes
    instead of one noisy reading each.  Where they disagree (a GPU, where a big
    matrix costs little more than a small one) the measured rates stand and the
    unprobed sizes are estimated from the last one probed: by the sweep's ratio
    where it has both sizes (on its 2-core CPU a 1×384 LSTM ran at 0.6× the
    1×256's speed, not the 0.49× their parameter counts say: small matrices use
    the cores worse), else by the parameter ratio, which under-rates bigger
    sizes and so errs towards the smaller model.
    """
    implied = [rates[s] / ratio for s in rates if (ratio := table.relative_speed(s, last))]
    base = math.exp(sum(math.log(v) for v in implied) / len(implied)) if implied else 0.0
    steady = len(implied) >= 2 and all(abs(math.log(v / base)) <= math.log(1 + SPEED_BAND) for v in implied)
    for size in sizes:
        ratio = table.relative_speed(size, last)
        if steady and ratio is not None:
            rates[size] = base * ratio
        elif size not in rates:
            rates[size] = rates[last] * (ratio if ratio is not None else cost(last) / cost(size))
    return steady


def budget_text(config) -> str:
    parts = []
    if config.max_time_s is not None:
        parts.append(f"{config.max_time_s / 60:g} min")
    if config.max_steps is not None:
        parts.append(f"{config.max_steps:,} steps")
    if config.epochs is not None:
        parts.append(f"{config.epochs:g} epochs")
    return ", ".join(parts)


def size_for_budget(model_cfg, config, batches, device: torch.device, autocast_dtype, token_chars, world: int,
                    clock: Callable[[], float], table: SweepTable | None = None) -> Choice:
    """``--size auto``: probe (time budgets only), predict from the sweep table, choose; all ranks agree.

    Each rank probes its own device at the same time (so a shared CPU is timed
    shared); rank 0's choice is broadcast.
    """
    table = table or SweepTable.load()
    start = clock()
    memory = available_memory(device)
    candidates = [s for s in GRID if memory_bytes(s, model_cfg.cell, model_cfg.vocab_size, model_cfg.embed_size,
                                                   batches.batch_size, batches.bptt) <= memory // 2] or [GRID[0]]
    corpus_chars = train_chars(batches.ids, token_chars)
    per_token = corpus_chars / max(1, len(batches.ids))
    caps = []  # characters a step or epoch budget allows, the same for every size
    if config.max_steps is not None:
        caps.append(config.max_steps * batches.batch_size * batches.bptt * world * per_token)
    if config.epochs is not None:
        caps.append(config.epochs * corpus_chars)
    cap = min(caps) if caps else math.inf
    rates: dict[Size, float] | None = None
    probed: list[Size] = []
    steady = False
    if config.max_time_s is not None:
        rates = probe(model_cfg, config, batches, device, autocast_dtype, token_chars, candidates,
                      PROBE_SHARE * config.max_time_s, clock)
        probed = list(rates)
        steady = estimate_rates(rates, probed[-1], candidates, table,
                                lambda s: step_cost(s, model_cfg.cell, model_cfg.vocab_size, model_cfg.embed_size))
        remaining = max(0.0, config.max_time_s - (clock() - start))
        chars = {s: min(cap, TRAIN_SHARE * remaining * rates[s] * world) for s in candidates}
    else:
        chars = {s: cap for s in candidates}
    choice = choose(table, candidates, chars, corpus_chars, budget_text(config), rates)
    if rates is not None:
        choice.reason += (f"; speeds: {len(probed)} probed sizes fitted to the sweep's speed ratios" if steady else
                          f"; speeds: {len(probed)} probed, as measured (unlike the sweep's machine)")
    if model_cfg.cell != "lstm" or token_chars is not None:
        choice.reason += "; the sweep's curves are the character-level LSTM's, read with this run's own throughput"
    if world > 1:
        import torch.distributed as dist

        box = torch.tensor([GRID.index(choice.size)], dtype=torch.int64, device=device)
        dist.broadcast(box, src=0)
        agreed = GRID[int(box.item())]
        if agreed != choice.size:
            choice.size, choice.reason = agreed, f"{agreed}: rank 0's choice"
    choice.probed = [str(s) for s in probed]
    choice.probe_s = round(clock() - start, 3)
    return choice
