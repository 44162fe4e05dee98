import pytest
from torch import nn

from rnnlm.model.params import layer_table, recurrent_params, totals


def test_keras_simplernn_example():
    rows = layer_table("rnn", 1, 3, 10)
    assert totals(rows) == (42, 45)


@pytest.mark.parametrize("cell, module", [("rnn", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)])
@pytest.mark.parametrize("layers", [1, 2])
def test_torch_column_equals_real_torch_modules(cell, module, layers):
    rows = layer_table(cell, layers, 17, 5)
    real = sum(p.numel() for p in module(5, 17, layers).parameters())
    assert totals(rows)[1] == real
    assert recurrent_params(cell, 17, 5)[1] - recurrent_params(cell, 17, 5)[0] == {"rnn": 1, "lstm": 4, "gru": 3}[cell] * 17


def test_with_vocabulary_adds_embedding_and_output_rows():
    rows = layer_table("lstm", 1, 8, 4, vocab_size=10, embed_size=4)
    assert [r.name for r in rows] == ["Embedding", "LSTM 1", "Linear"]
    assert rows[0].torch_params == 40 and rows[-1].torch_params == 8 * 10 + 10


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers, hidden, vocab, embed, tie", [(1, 7, 11, 5, False), (2, 12, 30, 12, True), (3, 9, 4, 6, False)])
def test_closed_form_count_equals_the_module(cell, layers, hidden, vocab, embed, tie):
    from rnnlm.core.config import ModelConfig
    from rnnlm.model.network import RNNLM, num_parameters
    from rnnlm.model.params import model_params

    module = RNNLM(ModelConfig(cell=cell, num_layers=layers, hidden_size=hidden, vocab_size=vocab, embed_size=embed,
                               tie_weights=tie))
    assert model_params(cell, layers, hidden, vocab, embed, tie) == num_parameters(module)
