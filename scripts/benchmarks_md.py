"""BENCHMARKS.md's sections, each between ``<!-- bench:NAME -->`` markers, rewritten by the script that measures
it (``bench.py``, ``sweep.py``); a module of its own so those scripts import it, not each other."""

from __future__ import annotations

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
