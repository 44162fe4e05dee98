"""rnnlm benchmark: every figure measured on this machine, beside a bare PyTorch baseline.

    python scripts/bench.py --quick      # speeds (minutes)
    python scripts/bench.py --quality    # time-to-quality runs (~45 min; start it in the background)

Prints a rich table per section and rewrites the matching section of
BENCHMARKS.md (between ``<!-- bench:NAME -->`` markers) with the machine, the
command and the numbers.  Speeds are the median of ≥ 3 repeats and always sit
beside a bare loop (embedding → nn.LSTM → linear, AdamW) written here, run in
the same process with the same data, config and threads — a ratio survives a
noisy, shared machine; an absolute number does not.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnlm.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlm.corpus import encode_char_corpus, scan_corpus  # noqa: E402
from rnnlm.data import TBPTTBatches, split_ids  # noqa: E402
from rnnlm.device import cpu_has_native_bf16  # noqa: E402
from rnnlm.evaluate import autocast_context  # noqa: E402
from rnnlm.model import RNNLM  # noqa: E402
from rnnlm.tokenizer import CharTokenizer  # noqa: E402
from rnnlm.trainer import Trainer  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
BENCH_MD = ROOT / "BENCHMARKS.md"
console = Console()


class BareLM(torch.nn.Module):
    """The baseline: embedding → nn.LSTM → linear, nothing else."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, embed)
        self.rnn = torch.nn.LSTM(embed, hidden, layers, batch_first=True)
        self.out = torch.nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        y, state = self.rnn(self.emb(x), state)
        return self.out(y), state


def load_ids() -> tuple[np.ndarray, CharTokenizer]:
    info = scan_corpus([CORPUS])
    tok = CharTokenizer.from_counts(info.codepoints, info.counts)
    return encode_char_corpus(info, tok), tok


def bare_train_speed(ids, vocab, *, embed, hidden, layers, bptt, batch, steps, warm=3, bf16=False) -> float:
    """chars/s of the bare loop: TBPTT with detached state, AdamW, clip 1."""
    torch.manual_seed(0)
    model = BareLM(vocab, embed, hidden, layers)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    batches = TBPTTBatches(ids, batch, bptt)
    state, t0 = None, 0.0
    for step in range(steps + warm):
        if step == warm:
            t0 = time.perf_counter()
        x, y = batches.batch(step, torch.device("cpu"))
        with autocast_context(torch.device("cpu"), torch.bfloat16 if bf16 else None):
            logits, state = model(x, state)
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        loss.item()
    return steps * batch * bptt / (time.perf_counter() - t0)


def rnnlm_train_speed(ids, vocab, *, embed, hidden, layers, bptt, batch, steps, warm=3, precision="fp32",
                      dropout=0.0) -> float:
    """chars/s of rnnlm's Trainer (events, finite checks, schedule) timed between step events."""
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=vocab, embed_size=embed, hidden_size=hidden, num_layers=layers, dropout=dropout))
    cfg = TrainConfig(batch_size=batch, bptt=bptt, max_time_s=None, max_steps=steps + warm, eval_every_s=1e9,
                      save_every_s=1e9, log_every_s=1e-9, precision=precision, device="cpu")
    stamps: dict[int, float] = {}
    dtype = torch.bfloat16 if precision == "bf16" else None
    trainer = Trainer(model, cfg, TBPTTBatches(ids, batch, bptt), ids[:1000], torch.device("cpu"),
                      Path("/tmp/rnnlm-bench-run"), {}, autocast_dtype=dtype,
                      callbacks=[lambda e: stamps.__setitem__(e.step, time.perf_counter()) if e.kind == "log" else None])
    trainer.save = lambda name, val=None: None  # measuring the loop, not the disk
    trainer.run()
    return steps * batch * bptt / (stamps[steps + warm] - stamps[warm])


def interleaved(fns: list, repeats: int) -> list[tuple[float, list[float]]]:
    """Run the candidates in turn, ``repeats`` rounds: a burst of noise hits all of them alike."""
    values: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            values[i].append(fn())
    return [(statistics.median(v), v) for v in values]


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def lstm_train_flops_per_char(vocab, embed, hidden, layers) -> float:
    """Forward multiply-adds ×2 (FLOPs) ×3 (forward + backward) per character."""
    fwd = sum(2 * 4 * hidden * ((embed if i == 0 else hidden) + hidden) for i in range(layers)) + 2 * hidden * vocab
    return 3 * fwd


def machine_line() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    return (f"{cpu}, {torch.get_num_threads()} threads, AVX-512 BF16: {'yes' if cpu_has_native_bf16() else 'no'}, "
            f"torch {torch.__version__}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")


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
    BENCH_MD.write_text(text)


def render(title: str, columns: list[str], rows: list[list[str]]) -> str:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(md)


def bench_throughput(repeats: int, steps: int) -> None:
    """Target 3: the reference config, rnnlm's trainer vs the bare loop, plus GFLOP/s against matmul peak."""
    ids, tok = load_ids()
    train_ids = split_ids(ids, (0.9, 0.05, 0.05))[0]
    ref = dict(embed=128, hidden=512, layers=2, bptt=128, batch=32)
    (bare, bare_all), (ours, ours_all) = interleaved(
        [lambda: bare_train_speed(train_ids, tok.vocab_size, steps=steps, **ref),
         lambda: rnnlm_train_speed(train_ids, tok.vocab_size, steps=steps, **ref)], repeats)
    peak = matmul_peak_gflops()
    flops = lstm_train_flops_per_char(tok.vocab_size, ref["embed"], ref["hidden"], ref["layers"])
    rows = [
        ["bare loop (fp32)", f"{bare:,.0f}", " / ".join(f"{v:,.0f}" for v in bare_all), "1.00×", f"{bare * flops / 1e9:.1f}"],
        ["rnnlm trainer (fp32)", f"{ours:,.0f}", " / ".join(f"{v:,.0f}" for v in ours_all), f"{ours / bare:.2f}×", f"{ours * flops / 1e9:.1f}"],
    ]
    body = render("training throughput: 2×512 LSTM, emb 128, T=128, B=32, fp32",
                  ["loop", "chars/s (median)", "repeats", "vs bare", "GFLOP/s"], rows)
    write_section("throughput", f"## Training throughput (reference config)\n\n{machine_line()}\n\n"
                  f"Command: `python scripts/bench.py --quick` ({steps} timed steps after 3 warm-up, median of {repeats}).\n"
                  f"Config: 2-layer LSTM 512, embedding 128, T=128, B=32, fp32, vocab {tok.vocab_size}; "
                  f"measured `torch.matmul` 2048² fp32 peak: {peak:.0f} GFLOP/s, so the trainer reaches "
                  f"{100 * ours * flops / 1e9 / peak:.0f}% of it.\n\n{body}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="speed figures (minutes)")
    parser.add_argument("--quality", action="store_true", help="time-to-quality runs (~45 min)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per speed repeat")
    parser.add_argument("--only", default=None, help="comma-separated section names")
    args = parser.parse_args()
    if not CORPUS.exists():
        sys.exit(f"bench needs {CORPUS}")
    sections = {"throughput": lambda: bench_throughput(args.repeats, args.steps)}
    chosen = args.only.split(",") if args.only else list(sections)
    for name in chosen:
        sections[name]()


if __name__ == "__main__":
    main()
