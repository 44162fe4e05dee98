"""Everything a first GPU run must show, in one call per part (issue 16); `--dry-run` does it on the CPU.

    PYTHONPATH=. python3 scripts/gpu_check.py --part checks     # versions, gpu tests, dtypes, CLI round trip, speeds
    PYTHONPATH=. python3 scripts/gpu_check.py --part quality    # 5-minute time to quality on nanoGPT's split
    python scripts/gpu_check.py --part checks --dry-run          # the same steps on the CPU, tiny, < 60 s (CI)

The GPU machine has torch and the other dependencies installed and no network: nothing is
installed here.  The quality part needs tinyshakespeare inside the checkout (the device tool
copies only the working tree): copy it to `.gpu/tinyshakespeare.txt` (git-ignored) and name
`.gpu` in the call's `carry`.  Each part prints a Markdown block in BENCHMARKS.md's GPU
section format and writes it to `$OUT/gpu-<part>.md` when `$OUT` is set (the device tool
brings that folder back).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS_PLACES = [ROOT / ".gpu" / "tinyshakespeare.txt", ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"]


def sh(*args, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, args))}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out


def rnnlm(*args, timeout: int = 900) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "rnnlm", *args, timeout=timeout)


def versions(device: str) -> list[str]:
    import torch

    lines = [f"torch {torch.__version__}, Python {sys.version.split()[0]}"]
    if device == "cuda":
        lines.append(f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                     f"{torch.cuda.get_device_name(0)}, bf16 supported: {torch.cuda.is_bf16_supported()}")
    return lines


def dtype_probe(device: str) -> list[str]:
    """What each cell computes in under the training autocast, and what the carried state is."""
    import torch

    from rnnlm.core.config import ModelConfig
    from rnnlm.core.device import autocast_context, resolve_autocast
    from rnnlm.model.network import RNNLM, detach_state

    rows = []
    dtype = resolve_autocast("auto", torch.device(device))
    for cell in ("rnn", "lstm", "gru"):
        model = RNNLM(ModelConfig(cell=cell, vocab_size=40, embed_size=8, hidden_size=16, dropout=0.0)).to(device)
        seen = {}
        model.rnn.register_forward_hook(lambda mod, args, out: seen.update(cell=out[0].dtype))
        with autocast_context(torch.device(device), dtype):
            logits, state = model(torch.randint(0, 40, (2, 4), device=device), model.init_state(2))
        carried = detach_state(state)
        rows.append(f"{cell}: autocast {dtype}, cell output {seen['cell']}, logits {logits.dtype}, "
                    f"carried state {carried[0].dtype}")
    return rows


def cli_round_trip(device: str, corpus: Path, tmp: Path, tiny: bool) -> list[str]:
    size = ["--hidden", "32", "--embed", "8", "--bptt", "8", "--batch-size", "4"] if tiny else []
    rows = []
    for cell in ("lstm",) if tiny else ("rnn", "lstm", "gru"):  # the dry run checks the steps, not every cell
        run = tmp / f"rt-{cell}"
        start = time.perf_counter()
        rnnlm("train", corpus, "--cell", cell, "--max-steps", "20" if tiny else "200", "--out", run, "--device", device,
              *size)
        rnnlm("train", corpus, "--resume", "--out", run, "--max-steps", "30" if tiny else "300")
        text = rnnlm("generate", run, "--prompt", "ROMEO:", "--length", "80", "--seed", "0", "--device", device).stdout
        score = json.loads(rnnlm("eval", run, "--json", "--device", device).stdout)
        rows.append(f"{cell}: train → resume → generate → eval in {time.perf_counter() - start:.0f} s, "
                    f"val bpc {score['bpc']:.3f}, sample {text[:40]!r}")
    return rows


def speeds(device: str, corpus: Path, tmp: Path, tiny: bool) -> list[str]:
    """Training chars/s of the default model and of a 3×1024 LSTM (median of the progress windows)."""
    import statistics

    rows = []
    configs = [("1×512 LSTM", ["--size", "512x1"]), ("3×1024 LSTM", ["--layers", "3", "--hidden", "1024"])]
    if tiny:
        configs = [("tiny 1×32 LSTM", ["--hidden", "32", "--embed", "8", "--bptt", "8", "--batch-size", "4"])]
    for name, flags in configs:
        run = tmp / f"speed-{len(rows)}"
        rnnlm("train", corpus, "--max-steps", "10" if tiny else "300", "--out", run, "--device", device, *flags)
        logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        speed = [e["chars_per_s"] for e in logs if e["event"] == "log"]
        done = next(e for e in logs if e["event"] == "done")
        median = statistics.median(speed) if speed else done["chars_seen"] / max(done["train_s"], 1e-9)
        rows.append(f"{name}: {median:,.0f} chars/s")
    return rows


def part_checks(device: str, corpus: Path, tiny: bool) -> str:
    lines = ["### Checks", "", *versions(device), ""]
    if device == "cuda":
        tests = sh(sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_gpu.py")
        lines += [f"gpu tests: {tests.stdout.strip().splitlines()[-1]}", ""]
    else:
        lines += ["gpu tests: not run (dry run on the CPU)", ""]
    lines += ["Precision probe:", "", *[f"- {r}" for r in dtype_probe(device)], ""]
    with tempfile.TemporaryDirectory() as tmp:
        lines += ["CLI round trip:", "", *[f"- {r}" for r in cli_round_trip(device, corpus, Path(tmp), tiny)], ""]
        lines += ["Training speed:", "", *[f"- {r}" for r in speeds(device, corpus, Path(tmp), tiny)]]
    return "\n".join(lines)


def part_quality(device: str, corpus: Path, tiny: bool) -> str:
    budget = "10s" if tiny else "5m"
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "quality"
        flags = ["--hidden", "32", "--embed", "8"] if tiny else []
        monitor = utilisation_monitor() if device == "cuda" else None
        try:
            rnnlm("train", corpus, "--max-time", budget, "--split", "0.9,0.1", "--out", run, "--device", device, *flags,
                  timeout=1200)
        finally:
            busy = utilisation_result(monitor)
        size = json.loads((run / "config.json").read_text())["size"]
        logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        done = next(e for e in logs if e["event"] == "done")
        curve = ", ".join(f"{e['time_s'] / 60:.1f}: {e['val_bpc'] * 0.6931:.4f}" for e in logs if e["event"] == "eval")
        window = json.loads(rnnlm("eval", run, "--json", "--window", "256", "--device", device).stdout)
    return "\n".join([
        "### Time to quality", "", *versions(device), "",
        f"`rnnlm train tinyshakespeare.txt --max-time {budget} --split 0.9,0.1 --device {device}`: {done['steps']:,} "
        f"steps, best val {done['best_val_bpc'] * 0.6931:.4f} nats/char (streamed), window 256: "
        f"{window['window']['nats_per_char']:.4f}; {done['chars_seen'] / max(done['train_s'], 1e-9):,.0f} chars/s.",
        "", f"Size: {size['size']} ({size['mode']}): {size['reason']}",
        "", f"GPU utilisation during training (nvidia-smi, 1 s samples): {busy}",
        "", f"Validation curve (minutes: nats per character): {curve}",
    ])


def utilisation_monitor():
    """``nvidia-smi`` sampling GPU utilisation once a second into a pipe (None where it is missing)."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return None
    return subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-l", "1"],
                            stdout=subprocess.PIPE, text=True)


def utilisation_result(monitor) -> str:
    if monitor is None:
        return "not measured (no nvidia-smi, or not a GPU run)"
    monitor.terminate()
    samples = [int(v) for v in monitor.communicate()[0].split() if v.strip().isdigit()]
    if not samples:
        return "no samples"
    return f"mean {sum(samples) / len(samples):.0f}%, median {sorted(samples)[len(samples) // 2]}% over {len(samples)} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["checks", "quality"], required=True)
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU with a tiny configuration")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA GPU here; use --dry-run to exercise the script on the CPU")
    corpus = next((p for p in CORPUS_PLACES if p.exists()), None)
    if corpus is None:
        raise SystemExit(f"tinyshakespeare not found; copy it to {CORPUS_PLACES[0]} (git-ignored) and carry .gpu")
    if args.dry_run:
        tmp = Path(tempfile.mkdtemp())
        small = tmp / "tiny.txt"
        small.write_text(corpus.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
        corpus = small
    start = time.perf_counter()
    body = (part_checks if args.part == "checks" else part_quality)(device, corpus, args.dry_run)
    block = f"{body}\n\n({args.part} part took {time.perf_counter() - start:.0f} s)\n"
    print(block)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], f"gpu-{args.part}.md").write_text(block)


if __name__ == "__main__":
    main()
