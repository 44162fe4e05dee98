"""The CUDA path agrees with the CPU path (skipped without a GPU; run on the lent device machine)."""

from __future__ import annotations

import pytest
import torch

import rnnlm
from rnnlm.config import ModelConfig
from rnnlm.evaluate import evaluate_ids
from rnnlm.model import RNNLM

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cudnn_forward_equals_cpu(cell):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(cell=cell, vocab_size=50, embed_size=16, hidden_size=32, num_layers=2, dropout=0.0))
    ids = torch.randint(0, 50, (4, 20))
    state = model.init_state(4)
    cpu_logits, _ = model(ids, state)
    gpu = model.to("cuda")
    gpu_logits, _ = gpu(ids.cuda(), tuple(s.cuda() for s in state))
    torch.testing.assert_close(gpu_logits.cpu(), cpu_logits, atol=1e-4, rtol=1e-4)


def test_train_sample_and_evaluate_on_cuda(tiny_corpus, tmp_path):
    config = rnnlm.TrainConfig(batch_size=4, bptt=8, max_time_s=None, max_steps=10, warmup_steps=2, eval_streams=4,
                               eval_every_s=1e9, device="cuda", precision="bf16")
    summary = rnnlm.train(tiny_corpus, model=rnnlm.ModelConfig(hidden_size=32, embed_size=8), config=config,
                          out=tmp_path / "run")
    on_gpu = rnnlm.load(tmp_path / "run", device="cuda")
    on_cpu = rnnlm.load(tmp_path / "run", device="cpu")
    assert on_gpu.generate("All:", length=50, seed=0).startswith("All:")
    assert summary["best_val_bpc"] == pytest.approx(on_cpu.evaluate_split("val").bpc, abs=1e-4)
    ids = on_cpu.tokenizer.encode(tiny_corpus.read_text(encoding="utf-8"))
    gpu_bpc = evaluate_ids(on_gpu.module, ids, streams=4).bpc
    assert gpu_bpc == pytest.approx(evaluate_ids(on_cpu.module, ids, streams=4).bpc, abs=1e-3)
