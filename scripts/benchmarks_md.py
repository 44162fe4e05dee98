"""BENCHMARKS.md's sections, each between ``<!-- bench:NAME -->`` markers, rewritten by the script that measures
it (``bench.py``, ``sweep.py``, ``paired.py``, ``bench_onnx.py``, ``bench_serve.py``), and the machine each figure
names, and their results files; a module of its own so those scripts import it, not each other."""

from __future__ import annotations

import fcntl
import json
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rnnlm.core.fileio import atomic_write_text

BENCH_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(name: str, body: str) -> None:
    """Replace the ``<!-- bench:name -->`` section of BENCHMARKS.md (append it when new)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = BENCH_MD.read_text() if BENCH_MD.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(BENCH_MD, text)


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def cpu_model() -> str:
    """The CPU's model name: every figure names the machine it was measured on."""
    return next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")),
                platform.processor() or "unknown CPU")


def cpu_simd() -> str:
    """The widest vector extension the CPU reports, with its bf16 path: bf16 speed, oneDNN's kernels and float
    rounding differ between these machines (Intel with AMX, AMD with AVX-512 BF16, AVX2 alone)."""
    flags = set(next((line.split(":", 1)[1].split() for line in _cpuinfo().splitlines() if line.startswith("flags")),
                     []))
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512 BF16" if "avx512_bf16" in flags else "AVX-512"
    return "AVX2" if "avx2" in flags else "no AVX2"


def machine_name() -> str:
    """The CPU and its widest vector extension, as results records name where they were measured."""
    return f"{cpu_model()} ({cpu_simd()})"


# The regularisers of the longer-budgets issue, as a run's summary (metrics.jsonl's ``done``) and its configs name
# them (docs/defaults.md); paired.py compares them arm by arm, sweep.py records them with every point.
REGULARISERS = ("weight_drop", "embed_drop", "state_reset")


def regularisation_of(summary: dict) -> dict[str, float]:
    """A run's rates from its summary or a results record; 0 (off) where it predates one."""
    return {name: float(summary.get(name, 0.0)) for name in REGULARISERS}


def default_regularisation() -> dict[str, float | None]:
    """The rates ``rnnlm train`` uses when none of their flags is given (None: auto, fitted to the run's passes)."""
    from rnnlm.core.config import ModelConfig, TrainConfig

    model, train = ModelConfig(), TrainConfig()
    return {"weight_drop": model.weight_drop, "embed_drop": model.embed_drop, "state_reset": train.state_reset}


@contextmanager
def updating_json(path: Path, lock: Path, load: Callable[[], dict]) -> Iterator[dict]:
    """Load a results file (``load``), let the caller change it, and write it back atomically, all under ``lock``:
    several runs of one script (one sweep per corpus, paired runs side by side) may finish at once, and a plain
    read-then-write would drop one of their records."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        data = load()
        yield data
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")
