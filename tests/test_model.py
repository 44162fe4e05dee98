"""The module itself: state shapes, tied weights, locked dropout."""

from __future__ import annotations

import pytest
import torch

from rnnlm.core.config import ModelConfig
from rnnlm.core.errors import InputError
from rnnlm.model.network import RNNLM, locked_dropout, num_parameters


@pytest.mark.parametrize("cell, count", [("rnn", 1), ("lstm", 2), ("gru", 1)])
def test_state_is_a_tuple_of_layer_batch_hidden(cell, count):
    model = RNNLM(ModelConfig(cell=cell, vocab_size=11, embed_size=4, hidden_size=6, num_layers=3))
    state = model.init_state(5)
    assert len(state) == count and all(s.shape == (3, 5, 6) for s in state)
    logits, new_state = model(torch.zeros(5, 7, dtype=torch.long), state)
    assert logits.shape == (5, 7, 11) and [s.shape for s in new_state] == [s.shape for s in state]


def test_tied_weights_are_one_parameter():
    tied = RNNLM(ModelConfig(vocab_size=11, embed_size=8, hidden_size=8, tie_weights=True))
    untied = RNNLM(ModelConfig(vocab_size=11, embed_size=8, hidden_size=8))
    assert tied.decoder.weight is tied.embedding.weight
    assert num_parameters(untied) - num_parameters(tied) == 11 * 8
    with pytest.raises(InputError, match="--tie"):
        ModelConfig(embed_size=8, hidden_size=16, tie_weights=True)


def test_locked_dropout_shares_one_mask_across_time_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(64, 50, 32)  # (B, T, C)
    y = locked_dropout(x, 0.25, training=True)
    assert torch.equal(y, y[:, :1].expand_as(y))  # every time step of a sequence: the same mask
    assert torch.allclose(y.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs((y[:, 0] == 0).float().mean().item() - 0.25) < 0.02
    assert y.mean().item() == pytest.approx(1.0, abs=0.03)
    assert locked_dropout(x, 0.25, training=False) is x and locked_dropout(x, 0.0, training=True) is x


def test_eval_mode_is_deterministic_training_mode_is_not():
    model = RNNLM(ModelConfig(vocab_size=11, embed_size=8, hidden_size=8, dropout=0.5))
    ids = torch.randint(0, 11, (2, 9))
    model.train()
    assert not torch.equal(model(ids, model.init_state(2))[0], model(ids, model.init_state(2))[0])
    model.eval()
    assert torch.equal(model(ids, model.init_state(2))[0], model(ids, model.init_state(2))[0])


@pytest.mark.parametrize("native", [True, False])
def test_under_cpu_autocast_the_cell_runs_bf16_only_where_onednn_can(monkeypatch, native):
    """AVX2-only CPUs have no oneDNN bf16 LSTM ("could not create a primitive descriptor"): the cell runs fp32."""
    from rnnlm.model import network as model_mod

    if native and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU's oneDNN has no bf16: the bf16 cell cannot run here (the case the policy avoids)")
    monkeypatch.setattr(model_mod, "cell_autocasts", lambda device: native)
    torch.manual_seed(0)
    net = RNNLM(ModelConfig(cell="lstm", vocab_size=11, embed_size=8, hidden_size=8, dropout=0.0))
    seen = {}
    net.rnn.register_forward_hook(lambda mod, args, out: seen.update(cell=out[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = net(torch.randint(0, 11, (2, 5)), net.init_state(2))
    assert seen["cell"] == (torch.bfloat16 if native else torch.float32) and logits.dtype == torch.bfloat16
