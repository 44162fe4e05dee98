"""ONNX export's figures: the file's size and ONNX Runtime's batch-1 sampling speed beside rnnlm's fp32 and int8.

    python scripts/bench_onnx.py                 # 1×512 LSTM (emb 64, vocab 65), 400 characters, median of 5, 1 thread
    python scripts/bench_onnx.py --hidden 256 --layers 2 --cell gru --json

Prints a markdown table (and, with ``--json``, one JSON object); writes nothing
into BENCHMARKS.md: ``scripts/bench.py`` can call :func:`bench_onnx` and put
its ``markdown`` in a section.  Random weights (speed and size do not depend on
them), as ``bench.py``'s sampling section uses.  Every sampler generates at
batch 1 from the same one-character prompt at temperature 1, the candidates
interleaved so that a burst of load hits all of them alike:

* rnnlm fp32 / int8: ``generate_ids`` on the float module and on its
  ``quantize_int8()`` copy (what ``generate`` and ``generate --quantize int8`` run);
* ONNX Runtime: the generation loop of docs/export.md (one ``session.run`` per
  character with the state fed back, softmax and the draw in numpy), the
  session on the same number of threads as torch.

One thread by default: a batch-1 step of a 1×512 LSTM is a few
matrix-vector products, which a second thread does not speed up, and on a
machine whose cores other jobs keep busy, torch's two threads wait on each
other (measured here under a load average of 9 on 2 cores: rnnlm fp32 fell
from ~1,400 to ~90 chars/s, ONNX Runtime from ~2,900 to ~700).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnlm.core.config import ModelConfig, SamplingConfig  # noqa: E402
from rnnlm.data.tokenizers.char import CharTokenizer  # noqa: E402
from rnnlm.generation.onnx_export import build_onnx, onnx_meta  # noqa: E402
from rnnlm.generation.sample import generate_ids  # noqa: E402
from rnnlm.model.int8 import quantize_int8  # noqa: E402
from rnnlm.model.network import RNNLM, num_parameters  # noqa: E402

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tinyshakespeare's 65


def cpu_line(threads: int) -> str:
    """The CPU by name, its SIMD, the threads used and the load: figures from a shared machine need all four."""
    from scripts.benchmarks_md import cpu_model, cpu_simd

    name, simd = cpu_model(), cpu_simd()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{name}, {os.cpu_count()} cores, {simd}; {threads} thread(s) for torch and ONNX Runtime; load average "
            f"{load} (1/5/15 min) when measured; torch {torch.__version__}")


def rnnlm_speed(model, length: int) -> float:
    """chars/s of rnnlm's sampler at batch 1 (as scripts/bench.py's sampling section measures it)."""
    cfg = SamplingConfig(length=length, num_samples=1, seed=0, temperature=1.0)
    t0 = time.perf_counter()
    for _ in generate_ids(model, [0], cfg):
        pass
    return length / (time.perf_counter() - t0)


def ort_speed(session, meta: dict, length: int) -> float:
    """chars/s of docs/export.md's loop: one run per character, the state fed back, softmax and a draw in numpy."""
    rng = np.random.default_rng(0)
    state = {name: np.zeros((meta["num_layers"], 1, meta["hidden_size"]), np.float32) for name in meta["state"]}
    ids = np.zeros((1, 1), dtype=np.int64)
    outputs = ["logits", *meta["state_outputs"]]
    t0 = time.perf_counter()
    for _ in range(length):
        logits, *new_state = session.run(outputs, {"ids": ids, **state})
        state = dict(zip(meta["state"], new_state))
        z = logits[0, -1]
        p = np.exp(z - z.max())
        ids = np.array([[rng.choice(len(p), p=p / p.sum())]], dtype=np.int64)
    return length / (time.perf_counter() - t0)


def bench_onnx(cell: str = "lstm", hidden: int = 512, layers: int = 1, embed: int = 64, length: int = 400,
               repeats: int = 5, threads: int = 1, command: str = "python scripts/bench_onnx.py") -> dict:
    """Sizes and batch-1 chars/s (median and every repeat) of rnnlm fp32, rnnlm int8 and ONNX Runtime."""
    import onnxruntime as ort

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(cell=cell, vocab_size=len(CHARS), embed_size=embed, hidden_size=hidden,
                              num_layers=layers, dropout=0.0)).eval()
    tokenizer = CharTokenizer(CHARS)
    meta = onnx_meta(model, tokenizer, {"corpus": "random weights", "val_bpc": None, "checkpoint": None, "step": 0})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(build_onnx(model, meta))
        onnx_bytes = path.stat().st_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    json_bytes = len((json.dumps(meta, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    int8 = quantize_int8(model)
    checkpoint_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    runs = {"rnnlm fp32": lambda: rnnlm_speed(model, length), "rnnlm int8": lambda: rnnlm_speed(int8, length),
            "ONNX Runtime fp32": lambda: ort_speed(session, meta, length)}
    for run in runs.values():  # warm-up: first calls pay for allocation and kernel choice
        run()
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            speeds[name].append(run())
    median = {name: statistics.median(values) for name, values in speeds.items()}
    base = median["rnnlm fp32"]
    rows = [[name, f"{median[name]:,.0f}", " / ".join(f"{v:,.0f}" for v in values), f"{median[name] / base:.2f}×"]
            for name, values in speeds.items()]
    shape = f"{layers}×{hidden} {cell.upper()}, embedding {embed}, vocab {len(CHARS)}"
    table = ["| sampler (batch 1) | chars/s (median) | repeats | vs rnnlm fp32 |", "|---|---|---|---|",
             *("| " + " | ".join(row) + " |" for row in rows)]
    markdown = (f"{cpu_line(threads)}, onnxruntime {ort.__version__}.\n\n"
                f"Command: `{command}` ({shape}, {num_parameters(model):,} parameters, random "
                f"weights; {length} characters at temperature 1, median of {repeats} interleaved repeats after one "
                f"warm-up). ONNX file {onnx_bytes / 1e6:.2f} MB ({onnx_bytes / num_parameters(model):.2f} bytes per "
                f"parameter; the float32 weights alone {checkpoint_bytes / 1e6:.2f} MB), plus {json_bytes / 1e3:.1f} kB "
                f"of JSON beside it.\n\n" + "\n".join(table) + "\n")
    return {"machine": cpu_line(threads), "onnxruntime": ort.__version__, "model": shape,
            "parameters": num_parameters(model), "onnx_bytes": onnx_bytes, "json_bytes": json_bytes,
            "weights_bytes": checkpoint_bytes, "length": length, "repeats": repeats, "threads": threads,
            "chars_per_s": median, "all": speeds, "markdown": markdown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="lstm", choices=("rnn", "lstm", "gru"))
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--length", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch's and ONNX Runtime's (default 1)")
    parser.add_argument("--write", action="store_true", help="also write BENCHMARKS.md's onnx section")
    parser.add_argument("--json", action="store_true", help="print one JSON object after the table")
    args = parser.parse_args()
    command = " ".join(["python scripts/bench_onnx.py", *(a for a in sys.argv[1:] if a != "--json")])
    result = bench_onnx(args.cell, args.hidden, args.layers, args.embed, args.length, args.repeats, args.threads,
                        command)
    print(result["markdown"])
    if args.write:
        from scripts.benchmarks_md import write_section

        write_section("onnx", "## ONNX Runtime against rnnlm's samplers (batch 1)\n\n" + result["markdown"])
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "markdown"}))


if __name__ == "__main__":
    main()
