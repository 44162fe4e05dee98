import math

import numpy as np
import pytest

from rnnlm.evaluation.ngram import KneserNey, kneser_ney, unigram


def test_unigram_is_add_one_cross_entropy():
    train, test = np.array([0, 0, 1]), np.array([0, 2])
    p = np.array([3, 2, 1]) / 6  # counts + 1
    expected = -(math.log(p[0]) + math.log(p[2]))
    result = unigram(train, test, vocab_size=3)
    assert result.nats == pytest.approx(expected)
    assert result.bpc == pytest.approx(expected / 2 / math.log(2))


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_kneser_ney_distributions_sum_to_one_even_for_unseen_contexts(order):
    rng = np.random.default_rng(order)
    train = rng.integers(0, 6, 500)
    model = KneserNey(train, vocab_size=9, order=order)  # symbols 6..8 never seen
    for context in (train[:10], np.array([7, 8, 7, 8]), np.array([], dtype=np.int64), np.array([1])):
        dist = model.distribution(context)
        assert dist.sum() == pytest.approx(1.0, abs=1e-9)
        assert (dist > 0).all()


def test_higher_order_wins_on_repetitive_text_and_unseen_symbols_stay_finite():
    text = np.array(list(b"the cat sat on the mat. " * 40)) % 40
    train, test = text[:800], np.concatenate([text[800:], [39]])
    uni, five = unigram(train, test, 40), kneser_ney(train, test, 40, order=5)
    assert five.bpc < uni.bpc / 3
    assert math.isfinite(five.nats) and math.isfinite(uni.nats)
