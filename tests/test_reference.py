"""The fused torch cells equal the numpy textbook equations (float64 reference)."""

import numpy as np
import pytest
import torch
from torch import nn

from rnnlm.core.config import ModelConfig
from rnnlm.model.network import RNNLM
from rnnlm.model.reference import cell_step, gru_step_textbook, lm_forward, stack_forward

TORCH_STACKS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _numpy(module: nn.Module) -> dict:
    return {k: v.detach().double().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_stack_matches_torch(cell, layers, dtype):
    torch.manual_seed(layers)
    stack = TORCH_STACKS[cell](5, 7, layers, batch_first=True).to(dtype)
    x = torch.randn(3, 11, 5, dtype=dtype)  # (B, T, I)
    state = tuple(torch.randn(layers, 3, 7, dtype=dtype) for _ in range(2 if cell == "lstm" else 1))
    out, final = stack(x, state if cell == "lstm" else state[0])
    final = final if isinstance(final, tuple) else (final,)
    ref_out, ref_final = stack_forward(cell, _numpy(stack), x.double().numpy().transpose(1, 0, 2),
                                       tuple(s.double().numpy() for s in state))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(out.detach().double().numpy(), ref_out.transpose(1, 0, 2), atol=tol)
    for got, want in zip(final, ref_final):
        np.testing.assert_allclose(got.detach().double().numpy(), want, atol=tol)


def test_single_steps_match_torch_cells():
    torch.manual_seed(0)
    x, h, c = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    cells = {"rnn": nn.RNNCell(6, 5), "lstm": nn.LSTMCell(6, 5), "gru": nn.GRUCell(6, 5)}
    for name, module in cells.items():
        module = module.double()
        p = [v.detach().numpy() for v in (module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh)]
        state = (h, c) if name == "lstm" else (h,)
        got = module(x, state if name == "lstm" else h)
        got = got if isinstance(got, tuple) else (got,)
        want, _ = cell_step(name, x.numpy(), tuple(s.numpy() for s in state), *p)
        assert len(want) == len(got)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.detach().numpy(), w, atol=1e-12)


def _gru(x, h, W, U, b_ih, b_hh):
    return cell_step("gru", x, (h,), W, U, b_ih, b_hh)[0][0]


def test_textbook_gru_differs_from_torch_gru_except_when_reset_is_open():
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(4, 6)), rng.normal(size=(4, 5))
    W, U, b = rng.normal(size=(15, 6)), rng.normal(size=(15, 5)), rng.normal(size=15)
    torch_form = _gru(x, h, W, U, b, np.zeros(15))
    assert np.abs(torch_form - gru_step_textbook(x, h, W, U, b)).max() > 1e-3
    b_open = b.copy()
    b_open[:5] = 1e3  # reset gate saturated at 1: r ⊙ (U h) = U (r ⊙ h)
    np.testing.assert_allclose(_gru(x, h, W, U, b_open, np.zeros(15)), gru_step_textbook(x, h, W, U, b_open), atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_matches_reference(cell):
    torch.manual_seed(1)
    model = RNNLM(ModelConfig(cell=cell, vocab_size=13, embed_size=6, hidden_size=9, num_layers=2, dropout=0.0)).eval()
    ids = torch.randint(0, 13, (2, 10))
    state = tuple(torch.randn_like(s) for s in model.init_state(2))
    logits, final = model(ids, state)
    ref_logits, ref_final = lm_forward(cell, _numpy(model), ids.numpy(), tuple(s.double().numpy() for s in state))
    np.testing.assert_allclose(logits.detach().double().numpy(), ref_logits, atol=1e-5)
    for got, want in zip(final, ref_final):
        np.testing.assert_allclose(got.detach().double().numpy(), want, atol=1e-5)
