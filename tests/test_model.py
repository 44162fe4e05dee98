"""The module itself: state shapes, tied weights, locked dropout."""

from __future__ import annotations

import pytest
import torch

from rnnlm.config import ModelConfig
from rnnlm.errors import InputError
from rnnlm.model import RNNLM, locked_dropout, num_parameters


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
