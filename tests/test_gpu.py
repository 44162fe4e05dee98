"""The CUDA path (skipped without a GPU; `scripts/gpu_check.sh --part checks` runs these on the lent machine).

Exactness tests turn TF32 off (an H100's cuDNN uses TF32 by default, which can
exceed 1e-4 against the CPU); the TF32 path is tested apart with its own tolerance.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import rnnlm
from rnnlm.core.config import ModelConfig
from rnnlm.evaluation.metrics import evaluate_ids
from rnnlm.model.network import RNNLM

pytestmark = pytest.mark.gpu
CELLS = ["rnn", "lstm", "gru"]


def _tf32(enabled: bool):
    """TF32 in matmuls and cuDNN on or off for the duration of a test, then as it was: the flags are global, and
    a test that left them set would change the precision of every later test in the session."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    yield  # pytest resumes the fixture after the test, failed or not
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def exact_fp32():
    """No TF32 in matmuls or cuDNN."""
    yield from _tf32(False)


@pytest.fixture
def with_tf32():
    """TF32 in matmuls and cuDNN."""
    yield from _tf32(True)


def _pair(cell: str):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(cell=cell, vocab_size=50, embed_size=16, hidden_size=32, num_layers=2, dropout=0.0))
    ids = torch.randint(0, 50, (4, 20))
    state = model.init_state(4)
    cpu_logits, _ = model(ids, state)
    gpu = model.to("cuda")
    gpu_logits, _ = gpu(ids.cuda(), tuple(s.cuda() for s in state))
    return cpu_logits.detach(), gpu_logits.detach().cpu()


@pytest.mark.parametrize("cell", CELLS)
def test_cudnn_forward_equals_cpu_without_tf32(cell, exact_fp32):
    cpu_logits, gpu_logits = _pair(cell)
    torch.testing.assert_close(gpu_logits, cpu_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
def test_cudnn_forward_with_tf32_is_close(cell, with_tf32):
    cpu_logits, gpu_logits = _pair(cell)
    torch.testing.assert_close(gpu_logits, cpu_logits, atol=2e-2, rtol=2e-2)  # TF32: 10-bit mantissa products


@pytest.mark.parametrize("cell", CELLS)
def test_under_bf16_autocast_the_cell_runs_fp32_and_the_decoder_bf16(cell):
    """The precision policy (RNNLM.forward): never fp16 inside the recurrent layer."""
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(cell=cell, vocab_size=50, embed_size=16, hidden_size=32, dropout=0.0)).cuda()
    seen = {}
    model.rnn.register_forward_hook(lambda mod, args, out: seen.update(out=out[0].dtype, inp=args[0].dtype))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, state = model(torch.randint(0, 50, (2, 5), device="cuda"), model.init_state(2))
    assert seen == {"out": torch.float32, "inp": torch.float32}
    assert logits.dtype == torch.bfloat16 and all(s.dtype == torch.float32 for s in state)


def _cli(*args, check=True):
    out = subprocess.run([sys.executable, "-m", "rnnlm", *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.parametrize("cell", CELLS)
def test_cli_trains_resumes_generates_and_evaluates_on_cuda(cell, tiny_corpus, tmp_path):
    run = tmp_path / cell
    tiny = ["--hidden", 32, "--embed", 8, "--bptt", 8, "--batch-size", 4, "--cell", cell, "--device", "cuda"]
    _cli("train", tiny_corpus, "--max-steps", 10, "--out", run, *tiny)
    _cli("train", tiny_corpus, "--resume", "--out", run, "--max-steps", 20)
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["train"]["device"] == "cuda"
    text = _cli("generate", run, "--prompt", "All:", "--length", 40, "--seed", 0, "--device", "cuda").stdout
    assert text.startswith("All:")
    on_gpu = json.loads(_cli("eval", run, "--json", "--device", "cuda").stdout)
    on_cpu = json.loads(_cli("eval", run, "--json", "--device", "cpu").stdout)
    assert on_gpu["bpc"] == pytest.approx(on_cpu["bpc"], abs=1e-2)  # TF32 on the GPU side


def test_bf16_training_on_cuda_learns(tiny_corpus, tmp_path):
    config = rnnlm.TrainConfig(batch_size=8, bptt=16, max_time_s=None, max_steps=150, warmup_steps=10, eval_streams=4,
                               eval_every_s=1e9, device="cuda", precision="bf16", log_every_s=1e-9)
    losses = []
    summary = rnnlm.train(tiny_corpus, model=rnnlm.ModelConfig(hidden_size=64, embed_size=16), config=config,
                          out=tmp_path / "run", callbacks=[lambda e: losses.append(e.data["loss"]) if e.kind == "log" else None])
    assert losses[-1] < losses[0] - 1.0 and summary["best_val_bpc"] < 4.0


def test_train_sample_and_evaluate_on_cuda_agree_with_the_cpu(tiny_corpus, tmp_path, exact_fp32):
    config = rnnlm.TrainConfig(batch_size=4, bptt=8, max_time_s=None, max_steps=10, warmup_steps=2, eval_streams=4,
                               eval_every_s=1e9, device="cuda", precision="fp32")
    summary = rnnlm.train(tiny_corpus, model=rnnlm.ModelConfig(hidden_size=32, embed_size=8), config=config,
                          out=tmp_path / "run")
    on_gpu = rnnlm.load(tmp_path / "run", device="cuda")
    on_cpu = rnnlm.load(tmp_path / "run", device="cpu")
    assert on_gpu.generate("All:", length=50, seed=0).startswith("All:")
    assert summary["best_val_bpc"] == pytest.approx(on_cpu.evaluate_split("val").bpc, abs=1e-4)
    ids = on_cpu.tokenizer.encode(tiny_corpus.read_text(encoding="utf-8"))
    gpu_bpc = evaluate_ids(on_gpu.module, ids, streams=4).bpc
    assert gpu_bpc == pytest.approx(evaluate_ids(on_cpu.module, ids, streams=4).bpc, abs=1e-4)
