"""``rnnlm inspect``'s parts: recomputed states, gradient reach, features, scores, surprise, page packing."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlm.core.config import ModelConfig
from rnnlm.core.errors import InputError
from rnnlm.inspection.features import all_features, bracket_depth, builtin_features, inside_quotes, parse_feature, position_in_word
from rnnlm.inspection.finder import Column, average_ranks, find_units, score
from rnnlm.inspection.gradreach import gradient_reach
from rnnlm.inspection.page import pack_nibbles, quantise
from rnnlm.model.network import RNNLM
from rnnlm.inspection.surprise import char_layout, spread_bits, token_surprise
from rnnlm.model.unroll import unroll


def _model(cell: str, layers: int, seed: int = 0) -> RNNLM:
    torch.manual_seed(seed)
    config = ModelConfig(cell=cell, vocab_size=23, embed_size=8, hidden_size=12, num_layers=layers, dropout=0.0)
    return RNNLM(config).eval()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_recomputed_states_equal_the_fused_forward(cell, layers):
    model = _model(cell, layers)
    ids = torch.randint(0, 23, (300,), generator=torch.Generator().manual_seed(layers))
    state = tuple(0.5 * torch.randn(layers, 1, 12) for _ in model.init_state(1))
    with torch.no_grad():
        fused_logits, fused_final = model(ids[None], state)
        fused_top, _ = model.rnn(model.embedding(ids[None]), state if cell == "lstm" else state[0])
    signals, logits = unroll(model, ids, state)
    assert signals["h"].shape == (layers, 300, 12)
    torch.testing.assert_close(signals["h"][-1], fused_top[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(signals["h"][:, -1], fused_final[0][:, 0], atol=1e-5, rtol=0)  # every layer's last h
    torch.testing.assert_close(logits, fused_logits[0], atol=1e-5, rtol=0)
    if cell == "lstm":
        torch.testing.assert_close(signals["c"][:, -1], torch.tanh(fused_final[1][:, 0]), atol=1e-5, rtol=0)
        assert set(signals) == {"h", "c", "i", "f", "g", "o"}
    gates = {"rnn": (), "lstm": ("i", "f", "o"), "gru": ("r", "z")}[cell]
    for gate in gates:
        assert 0 <= signals[gate].min() and signals[gate].max() <= 1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradient_reach_equals_autograd_through_the_fused_kernel(cell, layers):
    """‖∂L_t/∂h_{t−k}‖ of the top layer = the gradient of L_t w.r.t. the state a fused run starts from k steps back."""
    model = _model(cell, layers, seed=3)
    ids = np.random.default_rng(1).integers(0, 23, 40)
    reach = gradient_reach(model, ids, max_k=12, windows=1, warmup=4)
    assert reach.norms.shape == (layers, 12)
    row = torch.from_numpy(ids[: 4 + 12 + 2])  # the one window: warm-up 4, then h_{t−12} … h_t, then the target
    t = 4 + 12
    for k in (1, 5, 12):
        with torch.no_grad():
            _, state = model(row[None, : t - k + 1], model.init_state(1))  # the state after position t − k
        state = tuple(s.clone().requires_grad_(True) for s in state)
        logits, _ = model(row[None, t - k + 1 : t + 1], state)
        loss = F.cross_entropy(logits[0, -1:], row[t + 1 : t + 2], reduction="sum")
        expected = torch.autograd.grad(loss, state[0])[0][-1].norm().item()
        assert reach.norms[-1, k - 1] == pytest.approx(expected, rel=1e-4)


def test_gradient_reach_shortens_to_fit_a_short_text_and_reports_thresholds():
    model = _model("rnn", 1)
    reach = gradient_reach(model, np.arange(50) % 23, max_k=256)
    assert reach.max_k == 48 and reach.windows == 1  # no warm-up left, k up to 48
    assert gradient_reach(model, np.array([1, 2])) is None
    curve = reach.top
    for fraction in (0.5, 0.01):  # this random RNN forgets within a few steps: both are within max_k
        assert reach.k_below(fraction) == next(k + 1 for k in range(48) if curve[k] < fraction * curve[0])
    assert reach.k_below(0.0) is None  # no norm falls below zero: "not within max_k", not a number
    summary = reach.to_dict()
    assert (summary["half_life"], summary["k_below_1pct"]) == (reach.k_below(0.5), reach.k_below(0.01))


def test_features_describe_the_text_up_to_each_character():
    text = 'ab "cd" (x[y])\nHi 7!'
    assert inside_quotes(text).tolist() == [0, 0, 0, 1, 1, 1, 0] + [0] * 13  # the closing quote is outside
    assert bracket_depth(text).tolist() == [0] * 8 + [1, 1, 2, 2, 1, 0] + [0] * 6
    assert bracket_depth("a))(b)").tolist() == [0, 0, 0, 1, 1, 0]  # a stray closer does not go negative
    assert position_in_word("ab cd'e f").tolist() == [1, 2, 0, 1, 2, 3, 4, 0, 1]
    feats = {f.name: f for f in builtin_features(text)}
    assert feats["position in line"].values.tolist()[12:17] == [12, 13, 14, 0, 1]
    assert feats["chars to end of line"].values.tolist()[12:17] == [2, 1, 0, 5, 4]  # the text's end ends a line
    assert feats["start of line"].values.nonzero()[0].tolist() == [0, 15]
    assert feats["upper case"].values.nonzero()[0].tolist() == [15]
    assert feats["digit"].values.nonzero()[0].tolist() == [18]
    assert set(feats["punctuation"].values.nonzero()[0].tolist()) == {3, 6, 8, 10, 12, 13, 19}
    curly = inside_quotes("a “b” c")
    assert curly.tolist() == [0, 0, 1, 1, 0, 0, 0]


def test_regex_features_and_their_errors():
    name, pattern = parse_feature("vowel run=[aeiou]+")
    feats = {f.name: f for f in all_features("bead x", [(name, pattern)])}
    assert feats["vowel run"].values.tolist() == [0, 1, 1, 0, 0, 0] and feats["vowel run"].kind == "binary"
    for bad, why in (("novalue", "NAME=REGEX"), ("x=(", "not a valid regular expression"), ("9x=a", "name must start")):
        with pytest.raises(InputError, match=re.escape(why)):
            parse_feature(bad)


def test_scores_equal_their_definitions():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(60, 3)), 1)  # rounding makes ties
    y = (rng.random(60) < 0.4).astype(float)
    pos, neg = x[y == 1], x[y == 0]
    for j in range(3):  # AUROC by counting pairs, ties half
        pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos[:, j], neg[:, j])]
        assert score(x[:, j], y, "binary") == pytest.approx(2 * np.mean(pairs) - 1)
    counts = rng.integers(0, 5, 60).astype(float)
    rank_x, rank_y = average_ranks(x[:, 0])[:, 0], average_ranks(counts)[:, 0]
    assert score(x[:, 0], counts, "count") == pytest.approx(np.corrcoef(rank_x, rank_y)[0, 1])
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0]))[:, 0].tolist() == [3.5, 1, 3.5, 2]


def _planted(n=2000, units=40, seed=0):
    rng = np.random.default_rng(seed)
    depth = np.abs(np.cumsum(rng.choice([-1, 1], n))) % 5
    matrix = rng.normal(size=(n, units))
    matrix[:, 7] = -np.tanh(depth - 2 + 0.3 * rng.normal(size=n))  # one unit tracks depth (inversely, non-linearly)
    return depth.astype(float), matrix


def test_the_finder_ranks_a_planted_unit_first_and_confirms_it_on_the_other_half():
    from rnnlm.inspection.features import Feature

    depth, matrix = _planted()
    columns = [Column(0, "h", u) for u in range(matrix.shape[1])]
    rare = np.zeros(len(depth))
    rare[[5, 50, 1500]] = 1  # three positives: too few in either half
    results = find_units([Feature("depth", "count", depth, ""), Feature("rare", "binary", rare, "")], matrix, columns,
                         threshold=0.5)
    found = results[0]
    assert found.units[0].column == Column(0, "h", 7) and found.units[0].listed
    assert found.units[0].heldout_score < -0.9  # signed: the unit falls as depth rises
    assert not any(u.listed for u in found.units[1:])  # chance units do not pass the held-out threshold
    assert found.probe["heldout_score"] > 0.9 and found.probe["units_used"] >= 1
    assert results[1].skipped == "the first half has 2 positive characters (needs 20)" and not results[1].units


def test_the_probe_sees_a_feature_spread_over_many_units():
    from rnnlm.inspection.features import Feature

    rng = np.random.default_rng(2)
    n, units = 2000, 30
    y = (rng.random(n) < 0.5).astype(float)
    matrix = rng.normal(size=(n, units))
    matrix[:, :10] += 0.35 * (2 * y[:, None] - 1)  # ten weak units, each a poor read-out alone
    result = find_units([Feature("spread", "binary", y, "")], matrix, [Column(0, "h", u) for u in range(units)])[0]
    assert max(abs(u.heldout_score) for u in result.units) < 0.5
    assert result.probe["heldout_score"] > 0.75 and result.probe["units_used"] >= 5


def test_surprise_is_bits_of_the_actual_token_and_subword_bits_spread_over_characters():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    first = torch.log(torch.tensor([0.25, 0.25, 0.5]))
    bits, top_ids, top_p = token_surprise(logits, first, torch.tensor([2, 1]))
    assert bits.tolist() == pytest.approx([1.0, 2.0])  # 0.5 from the warm-up's output, then 0.25
    assert top_ids[1].tolist()[0] == 0 and top_p[1].tolist()[0] == pytest.approx(0.5)
    # Tokens spelling 3, 0 (a UTF-8 continuation byte) and 2 characters.
    token_of_char, lens = char_layout(np.array([0, 1, 2]), np.array([3, 0, 2]), 5)
    assert token_of_char.tolist() == [0, 0, 0, 2, 2]
    per_char = spread_bits(np.array([3.0, 0.5, 4.0]), lens)
    assert per_char.tolist() == [1.0, 1.0, 1.5, 2.0, 2.0] and per_char.sum() == pytest.approx(7.5)


def test_signals_pack_into_four_bits_two_per_byte():
    h = np.array([[-1.0, -0.5, 0.0, 0.99, 1.0]])
    levels = quantise(h, "h")
    assert levels.tolist() == [[0, 4, 8, 15, 15]]
    assert quantise(np.array([0.0, 0.5, 1.0]), "f").tolist() == [0, 8, 15]
    packed = pack_nibbles(levels)
    assert packed.shape == (1, 3)
    unpacked = np.stack([packed & 15, packed >> 4], axis=-1).reshape(1, -1)[:, :5]
    assert unpacked.tolist() == levels.tolist()
