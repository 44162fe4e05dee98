"""A 100 MB corpus with a 6,000-character vocabulary through `rnnlm train`: bounded validation, measured.

The corpus is built deterministically: tinyshakespeare repeated to ~95 MB, then
~5 MB of generated Chinese-like text (a Zipf draw over 6,000 CJK characters)
and German-like text (capitalised nouns, umlauts, ß), so the vocabulary makes
the output layer dominate as in issue 12.  Two runs, each a fresh process:

1. defaults + ``--max-steps 1`` (target: ≤ 60 s wall, start to exit);
2. defaults + ``--max-time 3m`` (target: seconds in training steps ≥ 85% of the wall time).

Each reports wall time, the seconds in training steps (``train_s`` of the done event)
and the peak RSS growth over the process's post-import baseline (target ≤ 4× the corpus).

    python scripts/bench_big.py [--mb 100] [--runs steps,time]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
CACHE = ROOT / "checkpoints" / ".bench"


def build_corpus(path: Path, mb: float, seed: int = 0) -> Path:
    """Write the mixed corpus once (it is reused when its size matches)."""
    size = int(mb * 1e6)
    if path.exists() and path.stat().st_size >= size:
        return path
    rng = np.random.default_rng(seed)
    english = SHAKESPEARE.read_text(encoding="utf-8")
    cjk = np.array([chr(0x4E00 + i) for i in range(6000)])
    zipf = 1.0 / np.arange(1, 6001) ** 1.05
    lines = []
    for _ in range(40_000):  # ~3 MB of Chinese-like lines (3 bytes per character)
        words = ["".join(rng.choice(cjk, rng.integers(1, 4), p=zipf / zipf.sum())) for _ in range(rng.integers(4, 12))]
        lines.append("".join(words) + rng.choice(["，", "。", "！", "？"]))
    stems = ["Haus", "Straße", "Bäcker", "Mädchen", "Größe", "Tür", "Übung", "Kö", "Fuß", "Weg", "Zeit", "Brücke"]
    small = ["und", "der", "die", "das", "über", "für", "schön", "müde", "groß", "weiß", "nicht", "ist"]
    for _ in range(30_000):  # ~2 MB of German-like lines
        words = [rng.choice(stems) + rng.choice(["", "en", "es", "chen", "ung"]) if rng.random() < 0.4
                 else rng.choice(small) for _ in range(rng.integers(5, 14))]
        lines.append(" ".join(words).capitalize() + ".")
    tail = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        written = 0
        target_english = size - len(tail.encode())
        while written < target_english:
            f.write(english)
            written += len(english.encode())
        f.write(tail)
    return path


def child(args: list[str]) -> None:
    """Run the CLI in this process after the imports, and print the peak RSS growth over that baseline."""
    import torch  # noqa: F401  (the baseline includes torch, as `rnnlm` itself imports it)

    from rnnlm.cli import cli

    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (Linux)
    baseline = _status("VmRSS")
    try:
        cli(args, standalone_mode=False)
    finally:
        print(json.dumps({"rss_growth": _status("VmHWM") - baseline}), file=sys.stderr)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def run(corpus: Path, *flags: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", "train", str(corpus), "--out", f"{tmp}/run", *flags],
                              capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        rss = json.loads(proc.stderr.strip().splitlines()[-1])["rss_growth"]
        done = next(json.loads(line) for line in Path(tmp, "run", "metrics.jsonl").read_text().splitlines()
                    if json.loads(line)["event"] == "done")
        evals = sum(1 for line in Path(tmp, "run", "metrics.jsonl").read_text().splitlines()
                    if json.loads(line)["event"] == "eval")
        phases = [line for line in proc.stderr.splitlines() if ": done in" in line]
    return {"wall_s": wall, "train_s": done["train_s"], "steps": done["steps"], "val_bpc": done["val_bpc"],
            "rss_growth": rss, "validations": evals, "phases": phases}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--runs", default="steps,time")
    args = parser.parse_args()
    corpus = build_corpus(CACHE / f"mixed-{args.mb:g}mb.txt", args.mb)
    size = corpus.stat().st_size
    for kind in args.runs.split(","):
        flags = ["--max-steps", "1"] if kind == "steps" else ["--max-time", "3m"]
        r = run(corpus, *flags)
        share = r["train_s"] / r["wall_s"]
        print(f"{' '.join(flags)}: wall {r['wall_s']:.1f} s, training steps {r['train_s']:.1f} s ({share:.0%} of wall), "
              f"{r['steps']} steps, {r['validations']} validations, val bpc {r['val_bpc']:.3f}, peak RSS growth "
              f"{r['rss_growth'] / 1e6:.0f} MB ({r['rss_growth'] / size:.2f}× the {size / 1e6:.0f} MB corpus); "
              f"phases: {'; '.join(r['phases']) or 'none over 1 s'}")


if __name__ == "__main__":
    main()
