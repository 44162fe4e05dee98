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

The choice always stands, but a predicted bpc is printed only for a run near
what the sweep measured (``grounded``): a run of that size within a factor of
``NEAR`` of this run's training characters on a corpus within ``NEAR`` of its
size, a vocabulary within ``NEAR`` of the sweep's and letters mostly of its
script (``SWEEP_SCRIPT``).  The figure then names the runs it comes from;
otherwise none is printed and the reason says what lies outside.  Below its
first measurement a curve is read flat or nearly so: 30 steps (2k characters)
of 384x1 "predicted 2.029" where the run measured 4.07, and a Korean corpus
(877 characters) got the English plays' figures.

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
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnlm.core.errors import InputError
from rnnlm.model.cells import REGISTRY
from rnnlm.model.params import model_params
from rnnlm.training.trainer import STEP_LOGITS_BUDGET

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
# A run within this factor of a sweep measurement (training characters, corpus size, vocabulary) is near it:
# the reach ``read_curve`` already gives a curve below its first point.
NEAR = EXTRAPOLATE
# The letters of the sweep's corpora: both are English plays (sizes.json names them).
SWEEP_SCRIPT = "Latin"
# Training ids decoded to find a corpus's script: evenly spaced slices, enough for the common letters.
SCRIPT_SAMPLE_IDS = 1 << 16
SCRIPT_SLICES = 64


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


# Training bytes per parameter: fp32 weights, gradients and AdamW's two moments (16), plus the copies a step
# makes of them (the fused cell's weight layout, the optimizer's and the clipping's intermediates): 25-34 measured.
BYTES_PER_PARAM = 28
# Bytes per position of a B×T window: per layer and hidden unit ACTIVATION_BYTES × (gates + 2) (the cell's
# saved gates, cell and hidden states, and their gradients), per embedding unit EMBED_BYTES (lookup, dropout,
# gradients); per logit LOGIT_BYTES (the logits, their log-softmax and gradient, in float32).
ACTIVATION_BYTES = 9
EMBED_BYTES = 24
LOGIT_BYTES = 12
# The runtime's own share of a training process (kernel caches, thread pools): a 64x1 LSTM at batch 4 × BPTT 8
# peaked 99 MB above the imported modules.
RUNTIME_BYTES = 100_000_000


def memory_parts(size: Size, cell: str, vocab: int, embed: int, batch: int, bptt: int) -> tuple[int, int]:
    """Training bytes of (parameters and their optimizer state, one step's activations) in float32.

    With ``RUNTIME_BYTES`` (``memory_bytes``) the sum came within -18% and
    +34% of the peak resident memory of three CPU training steps (torch 2.13,
    2-core AMD EPYC) over 15 settings: 64x1 to 2048x1 and 1024x3, LSTM, GRU
    and SimpleRNN, batch × BPTT from 1 × 1 to 512 × 512, vocabularies of 65
    and 6,000.  A step holds the logits of at most ``STEP_LOGITS_BUDGET``
    elements (the trainer slices bigger ones), or of one position of every
    stream.
    """
    params = model_params(cell, size.layers, size.hidden, vocab, embed)
    positions = batch * bptt
    logits = positions * vocab
    if logits > STEP_LOGITS_BUDGET:
        logits = batch * vocab * max(1, STEP_LOGITS_BUDGET // (batch * vocab))
    per_position = ACTIVATION_BYTES * size.layers * size.hidden * (REGISTRY[cell].gates + 2) + EMBED_BYTES * embed
    return params * BYTES_PER_PARAM, positions * per_position + LOGIT_BYTES * logits


def memory_bytes(size: Size, cell: str, vocab: int, embed: int, batch: int, bptt: int) -> int:
    """The training footprint in bytes: ``memory_parts`` and the runtime's own ``RUNTIME_BYTES``."""
    return sum(memory_parts(size, cell, vocab, embed, batch, bptt)) + RUNTIME_BYTES


def available_memory(device: torch.device) -> int:
    """Bytes free for a new run: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 1 << 34


def machine_memory(device: torch.device) -> int | None:
    """All the memory a run could ever have: the GPU's total, or the host's RAM (within a cgroup's limit).

    Total, not free: a size that cannot fit even so is bad input, refused
    before allocating; one that fails because other programs hold memory now
    is a failure while working (exit 1 with the out-of-memory hint).  None
    where the system does not say (no ``os.sysconf``).
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[1])
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    try:  # a container's cgroup v2 limit ("max" when there is none)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def gigabytes(n: float) -> str:
    """Bytes for a message: MB, GB or TB."""
    return f"{n / 1e12:,.1f} TB" if n >= 1e12 else f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def check_memory(size: Size, cell: str, vocab: int, embed: int, batch: int, bptt: int, device: torch.device) -> None:
    """Refuse (InputError) a size whose training needs more memory than the machine has, before allocating.

    docs/developer/rules.md: a size found unable to fit by the estimate is bad input
    (exit 2), named with the estimate and the setting that dominates it.
    """
    have = machine_memory(device)
    need = memory_bytes(size, cell, vocab, embed, batch, bptt)
    if have is None or need <= have:
        return
    weights, activations = memory_parts(size, cell, vocab, embed, batch, bptt)
    lower = ("--size (or --hidden, --layers)" if weights >= activations else
             "--batch-size or --bptt (or the size: --size, --hidden, --layers)")
    where = "the GPU has" if device.type == "cuda" else "this machine has"
    raise InputError(f"a {size} {cell} needs about {gigabytes(need)} to train "
                     f"({gigabytes(weights)} for its weights, gradients and optimizer state, {gigabytes(activations)} "
                     f"for a batch of {batch} × bptt {bptt}) but {where} {gigabytes(have)}; lower {lower}")


def text_script(decode: Callable[[Any], str], ids) -> str | None:
    """The script most of a corpus's letters are written in (Unicode's name for it: Latin, Hangul, CJK…).

    Read from ``SCRIPT_SLICES`` evenly spaced slices of the training ids,
    ``SCRIPT_SAMPLE_IDS`` in all, decoded; None for a text without letters.
    """
    width = max(1, SCRIPT_SAMPLE_IDS // SCRIPT_SLICES)
    stride = max(width, len(ids) // SCRIPT_SLICES)
    text = "".join(decode(ids[start:start + width]) for start in range(0, len(ids), stride))
    scripts: Counter[str] = Counter()
    for char, n in Counter(text).items():
        if unicodedata.category(char).startswith("L"):
            scripts[unicodedata.name(char, "?").split(" ")[0]] += n
    if not scripts:
        return None
    word = scripts.most_common(1)[0][0]
    return word if len(word) <= 3 else word.capitalize()


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
    from rnnlm.model.network import RNNLM
    from rnnlm.training.trainer import Trainer

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

    def runs(self, size: Size) -> list[dict[str, Any]]:
        """The size's curve points on every corpus: corpus name and size, characters seen, bpc."""
        return [{"corpus": c["name"], "corpus_chars": c["train_chars"], "chars": seen, "bpc": round(bpc, 4)}
                for c in self.corpora for seen, bpc in self.curve(c, size)]

    def near(self, size: Size, chars: float, train_chars: float) -> list[dict[str, Any]]:
        """The size's measurements near a run: within ``NEAR`` of its characters, on a corpus within ``NEAR`` of its."""
        return [run for run in self.runs(size)
                if within(run["chars"], chars) and within(run["corpus_chars"], train_chars)]

    def nearest(self, size: Size, chars: float, train_chars: float) -> dict[str, Any] | None:
        """The size's measurement closest to ``chars`` training characters (in log characters), or None.

        Between measurements as close, the one on the corpus nearest ``train_chars`` in size.
        """
        def distance(run: dict[str, Any]) -> tuple[float, float]:
            return (abs(math.log(run["chars"] / max(chars, 1.0))),
                    abs(math.log(run["corpus_chars"] / max(train_chars, 1.0))))
        return min(self.runs(size), key=distance, default=None)

    def unlike(self, vocab: int, script: str | None) -> list[str]:
        """How a corpus's vocabulary and script lie outside those of the sweep's corpora (nothing when they do not)."""
        vocabs = sorted({c["vocab"] for c in self.corpora})
        found = []
        if not vocabs[0] / NEAR <= vocab <= vocabs[-1] * NEAR:
            found.append(f"a vocabulary of {vocab:,} against the sweep's {' and '.join(map(str, vocabs))} characters")
        if script != SWEEP_SCRIPT:
            letters = f"mostly {script} letters" if script else "no letters"
            found.append(f"{letters} against the sweep's {SWEEP_SCRIPT} (English plays)")
        return found


def within(value: float, target: float) -> bool:
    """``value`` lies within a factor of ``NEAR`` of ``target``."""
    return abs(math.log(max(value, 1.0) / max(target, 1.0))) <= math.log(NEAR)


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
    # The curves read at each candidate's characters (what the choice ranks by), and of those the figures
    # near what the sweep measured: only these are predictions.
    curve_bpc: dict[str, float] = field(default_factory=dict)
    predicted_bpc: dict[str, float] = field(default_factory=dict)
    near: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per size: SweepTable.near
    nearest: dict[str, dict[str, Any]] = field(default_factory=dict)  # per size: SweepTable.nearest
    chars: dict[str, float] = field(default_factory=dict)
    chars_per_s: dict[str, float] = field(default_factory=dict)
    probed: list[str] = field(default_factory=list)
    probe_s: float = 0.0
    table_machine: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"size": str(self.size), "mode": self.mode, "reason": self.reason, "curve_bpc": self.curve_bpc,
                "predicted_bpc": self.predicted_bpc, "near": self.near, "nearest": self.nearest,
                "chars": self.chars, "chars_per_s": self.chars_per_s,
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
    *,
    vocab: int,
    script: str | None,
) -> Choice:
    """The candidate with the lowest bpc its curve gives at its characters (ties: the cheaper, listed first).

    A figure is printed as a prediction only for a size the sweep measured
    near this run (module docstring), with the runs it comes from; otherwise
    the reason says what lies outside and gives no figure.
    """
    curve = {s: table.predict(s, chars[s], train_chars) for s in candidates}
    ranked = sorted((p, i, s) for i, (s, p) in enumerate(curve.items()) if p is not None)
    if not ranked:
        raise InputError("--size auto: the sweep table has no measurement for these sizes; give --size HxL")
    best_bpc = ranked[0][0]
    size = min((i, s) for p, i, s in ranked if p <= best_bpc + TIE_BPC)[1]
    unlike = table.unlike(vocab, script)
    near = {s: table.near(s, chars[s], train_chars) for _, _, s in ranked}
    grounded = {s for s in near if near[s] and not unlike}
    runners = ", ".join(f"{s} {p:.3f}" if s in grounded else str(s) for p, _, s in ranked[:4] if s != size)
    speed = f" at {rates[size]:,.0f} chars/s" if rates else ""
    tie = f", within {TIE_BPC} of {ranked[0][2]}'s: the cheaper" if ranked[0][2] != size else ""
    run_text = (f"{count(chars[size])} training characters ({budget_text}{speed}; "
                f"corpus {count(train_chars)} characters)")
    if size in grounded:
        runs = "; ".join(f"{count(r['chars'])} characters of {r['corpus']} ({count(r['corpus_chars'])}) "
                         f"{r['bpc']:.3f}" for r in near[size])
        reason = (f"{size}: predicted {curve[size]:.3f} bpc{tie} after {run_text}, from the sweep's {size} runs "
                  f"near it, on English plays: {runs}")
    else:
        outside = list(unlike)
        if not near[size]:
            r = table.nearest(size, chars[size], train_chars)
            outside.append(f"{size}'s nearest run saw {count(r['chars'])} characters of {r['corpus']}'s "
                           f"{count(r['corpus_chars'])}")
        reason = (f"{size}: no bpc predicted for {run_text}: outside what the sweep measured "
                  f"({'; '.join(outside)}); chosen by its curves at their nearest measurements{tie}")
    return Choice(size=size, mode="auto", reason=f"{reason}; next: {runners}",
                  curve_bpc={str(s): round(p, 4) for p, _, s in ranked},
                  predicted_bpc={str(s): round(p, 4) for p, _, s in ranked if s in grounded},
                  near={str(s): runs for s, runs in near.items() if runs},
                  nearest={str(s): table.nearest(s, chars[s], train_chars) for _, _, s in ranked},
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
                    clock: Callable[[], float], table: SweepTable | None = None, *,
                    script: str | None = None) -> Choice:
    """``--size auto``: probe (time budgets only), predict from the sweep table, choose; all ranks agree.

    Each rank probes its own device at the same time (so a shared CPU is timed
    shared); rank 0's choice is broadcast.  ``script`` is the corpus's
    (``text_script``); None, a text without letters, is not the sweep's.
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
    choice = choose(table, candidates, chars, corpus_chars, budget_text(config), rates,
                    vocab=model_cfg.vocab_size, script=script)
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
