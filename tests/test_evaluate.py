"""Evaluation: bounded memory for any vocabulary, and the fixed validation sample of a big split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rnnlm.data import splits as data

from rnnlm.evaluation import metrics as evaluate
from rnnlm.cli import cli
from rnnlm.core.config import ModelConfig
from rnnlm.data.splits import val_scope
from rnnlm.evaluation.metrics import evaluate_ids, evaluate_rows
from rnnlm.model.network import RNNLM

TINY = ["--hidden", "16", "--embed", "8", "--bptt", "8", "--batch-size", "4", "--precision", "fp32", "--threads", "1"]


def test_scope_is_the_whole_split_up_to_the_cap_else_evenly_spaced_segments():
    assert val_scope(1000, max_chars=1000) == {"kind": "whole", "chars": 1000}
    scope = val_scope(10_000, max_chars=1000, segments=10)
    assert scope["kind"] == "sample" and scope["chars"] == 1000 and scope["segment_chars"] == 100
    offsets = scope["offsets"]
    assert offsets[0] == 0 and offsets[-1] == 10_000 - 100 and offsets == sorted(offsets) and len(offsets) == 10
    assert val_scope(10_000, max_chars=1000, segments=10) == scope  # from the length alone: every run agrees


def test_logits_held_at_once_stay_under_the_budget_for_a_big_vocabulary(monkeypatch):
    monkeypatch.setattr(evaluate, "LOGITS_BUDGET", 50_000)
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=3000, embed_size=8, hidden_size=8, dropout=0.0))
    sizes = []
    forward = model.forward

    def spy(ids, state):
        logits, new = forward(ids, state)
        sizes.append(logits.numel())
        return logits, new

    model.forward = spy
    ids = np.random.default_rng(0).integers(0, 3000, 2000)
    bounded = evaluate_ids(model, ids, streams=8)
    assert max(sizes) <= 50_000
    monkeypatch.setattr(evaluate, "LOGITS_BUDGET", 1 << 30)
    assert evaluate_ids(model, ids, streams=8).nats == pytest.approx(bounded.nats, rel=1e-5)  # chunking changes nothing


def test_rows_score_every_id_but_each_first_from_a_fresh_state():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=5, embed_size=4, hidden_size=4, dropout=0.0))
    rows = [np.array([1, 2, 3, 4]), np.array([0, 1])]  # ragged: padding must not count
    result = evaluate_rows(model, rows)
    assert result.tokens == 4 and result.chars == 4
    alone = sum(evaluate_rows(model, [r]).nats for r in rows)
    assert result.nats == pytest.approx(alone, rel=1e-5)


@pytest.mark.parametrize("tokenizer", [[], ["--tokenizer", "bpe", "--vocab-size", "300"]])
def test_a_big_split_is_validated_on_its_fixed_sample_and_eval_reproduces_it(tiny_corpus, tmp_path, monkeypatch,
                                                                             tokenizer):
    monkeypatch.setattr(data, "VAL_SAMPLE_CHARS", 400)
    monkeypatch.setattr(data, "VAL_SEGMENTS", 4)
    out = tmp_path / "run"
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", str(tiny_corpus), "--max-steps", "5", "--split", "0.5,0.5", "--out", str(out),
                                  *tokenizer, *TINY])
    assert trained.exit_code == 0, trained.output
    header = json.loads((out / "config.json").read_text())
    scope = header["val_scope"]
    assert scope["kind"] == "sample" and scope["chars"] == 400 and len(scope["offsets"]) == 4
    stored = json.loads(runner.invoke(cli, ["eval", str(out), "--json"]).output)
    from rnnlm.core.checkpoint import load_checkpoint

    meta, _ = load_checkpoint(out / "best.safetensors")
    assert stored["bpc"] == pytest.approx(meta["metrics"]["val_bpc"], abs=1e-4)
    assert 300 < stored["chars"] <= 400  # the sample's characters (each segment's first is context only)
    full = json.loads(runner.invoke(cli, ["eval", str(out), "--full", "--json"]).output)
    assert full["chars"] > 1000
