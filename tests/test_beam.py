"""Beam search: finds what greedy misses on a constructed model, beam 1 is greedy, scores are the model's own."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from click.testing import CliRunner

from rnnlm.generation.beam import beam_search
from rnnlm.cli import cli
from rnnlm.core.config import ModelConfig
from rnnlm.core.errors import InputError
from rnnlm.model.network import RNNLM
from rnnlm.generation.sample import SamplingConfig, generate_texts
from rnnlm.data.tokenizers.char import CharTokenizer

CHARS = "\nabxyz"
# Next-character probabilities given the current one.  Greedy takes 'a' (0.6) and then at best 'x' (0.32):
# "ax" has probability 0.192.  "bx" has 0.4 × 0.9 = 0.36, the most probable two characters, which greedy misses.
BIGRAM = {
    "\n": {"a": 0.6, "b": 0.4},
    "a": {"x": 0.32, "y": 0.3, "z": 0.28, "\n": 0.1},
    "b": {"x": 0.9, "y": 0.05, "z": 0.05},
    "x": {}, "y": {}, "z": {},  # uniform
}


def bigram_net(v: int, table: dict[int, dict[int, float]]) -> tuple[RNNLM, torch.Tensor]:
    """A SimpleRNN whose hidden state is (almost exactly) the one-hot current id and whose output layer holds the
    log-probabilities of ``table`` (next-id probabilities per current id; an empty row is uniform): a bigram model
    written as an RNNLM, and its (V, V) log-probabilities (row = current id)."""
    probs = torch.full((v, v), 1e-6)
    for prev, row in table.items():
        for nxt, p in row.items():
            probs[prev, nxt] = p
        if not row:
            probs[prev] = 1.0
    logp = (probs / probs.sum(1, keepdim=True)).log()  # (V, V): row = current character
    net = RNNLM(ModelConfig(cell="rnn", vocab_size=v, embed_size=v, hidden_size=v, dropout=0.0))
    with torch.no_grad():
        net.embedding.weight.copy_(torch.eye(v) * 20)  # tanh(20) = 1 - 8e-18: a one-hot hidden state
        net.rnn.weight_ih_l0.copy_(torch.eye(v))
        net.rnn.weight_hh_l0.zero_()
        net.rnn.bias_ih_l0.zero_()
        net.rnn.bias_hh_l0.zero_()
        net.decoder.weight.copy_(logp.T)
        net.decoder.bias.zero_()
    return net.eval(), logp


def bigram_model() -> tuple[RNNLM, CharTokenizer, torch.Tensor]:
    """:func:`bigram_net` over the characters and probabilities of ``BIGRAM``."""
    tok = CharTokenizer(CHARS)
    table = {CHARS.index(prev): {CHARS.index(nxt): p for nxt, p in row.items()} for prev, row in BIGRAM.items()}
    net, logp = bigram_net(len(CHARS), table)
    return net, tok, logp


def test_beam_finds_the_most_probable_continuation_that_greedy_misses():
    net, tok, logp = bigram_model()
    newline = CHARS.index("\n")
    exact = {a + b: logp[newline, CHARS.index(a)] + logp[CHARS.index(a), CHARS.index(b)]
             for a, b in itertools.product(CHARS, repeat=2)}
    assert max(exact, key=exact.get) == "bx"  # the construction holds
    greedy = generate_texts(net, tok, "", SamplingConfig(temperature=0, length=2), bos_id=newline)[0]
    assert greedy == "ax"
    assert beam_search(net, tok, "", beam=1, length=2, bos_id=newline)[0].text == "ax"
    best = beam_search(net, tok, "", beam=2, length=2, bos_id=newline)[0]
    assert best.text == "bx"
    assert best.logprob == pytest.approx(math.log(0.36), abs=1e-4)
    assert best.logprob_per_char == pytest.approx(math.log(0.36) / 2, abs=1e-4)


@pytest.fixture
def random_lm():
    """Random LSTM weights scaled up so the distributions are peaked (as in test_sample.py)."""
    tok = CharTokenizer.from_text("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind.\n")
    torch.manual_seed(0)
    net = RNNLM(ModelConfig(cell="lstm", vocab_size=tok.vocab_size, embed_size=16, hidden_size=16, dropout=0.0))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)
    return net.eval(), tok


def test_beam_1_equals_greedy(random_lm):
    net, tok = random_lm
    greedy = generate_texts(net, tok, "To be", SamplingConfig(temperature=0, length=80), echo=False)[0]
    assert beam_search(net, tok, "To be", beam=1, length=80)[0].text == greedy


def test_results_are_the_k_best_in_order_with_the_models_own_scores(random_lm):
    net, tok = random_lm
    results = beam_search(net, tok, "To", beam=5, length=30, num_results=3)
    assert len(results) == 3 and len({r.text for r in results}) == 3
    scores = [r.logprob_per_char for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results == beam_search(net, tok, "To", beam=5, length=30, num_results=3)  # deterministic
    ids = torch.as_tensor(tok.encode("To" + results[0].text).astype("int64"))[None]  # (1, L)
    with torch.no_grad():
        logits, _ = net(ids, net.init_state(1))
    rescored = torch.log_softmax(logits[0, 1:-1], -1).gather(1, ids[0, 2:, None]).sum()  # the generated part
    assert results[0].logprob == pytest.approx(float(rescored), abs=1e-4)  # one call vs steps: a tolerance


def test_a_stop_string_ends_hypotheses(random_lm):
    """The stop string is one the beams write (not in the best one), so the search must end hypotheses there."""
    net, tok = random_lm
    unstopped = beam_search(net, tok, "To", beam=4, length=60, num_results=4)
    stop = next(c for r in unstopped for c in r.text if c not in unstopped[0].text)
    results = beam_search(net, tok, "To", beam=4, length=60, num_results=4, stop=stop)
    assert len(results) == 4 and results != unstopped
    for result in results:
        assert result.text.find(stop) == len(result.text) - len(stop) and len(result.text) < 60
        assert tok.decode(result.ids) == result.text  # a char model's text is all of its ids, cut at the stop


@pytest.mark.parametrize("kwargs, message", [
    (dict(beam=0), "beam must be a positive integer"),
    (dict(beam=2, num_results=3), "at most its 2 beams; got num-samples 3"),
    (dict(beam=2, stop=""), "stop string must not be empty"),
])
def test_bad_arguments(random_lm, kwargs, message):
    net, tok = random_lm
    with pytest.raises(InputError, match=message):
        beam_search(net, tok, "To", length=5, **kwargs)


def test_generate_beam_through_the_api_and_the_cli(tiny_run):
    from rnnlm.generation.language_model import load

    lm = load(tiny_run)
    assert lm.generate("All:", length=40, beam=3) == "All:" + lm.beam_search("All:", 3, 40)[0].text
    with pytest.raises(InputError, match="temperature do not apply"):
        lm.generate("All:", length=40, beam=3, temperature=0.5)
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", str(tiny_run), "--prompt", "All:", "--length", "40", "--beam", "3",
                                 "--num-samples", "2", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == lm.generate("All:", length=40, beam=3, num_samples=2)
    assert records[0]["logprob_per_char"] >= records[1]["logprob_per_char"] and records[0]["settings"]["beam"] == 3
    bad = runner.invoke(cli, ["generate", str(tiny_run), "--beam", "3", "--temperature", "0.8", "--top-k", "5"])
    assert bad.exit_code == 2
    assert "error: --temperature, --top-k cannot be used with --beam" in bad.output and "Traceback" not in bad.output
    too_many = runner.invoke(cli, ["generate", str(tiny_run), "--beam", "2", "--num-samples", "3"])
    assert too_many.exit_code == 2 and "at most its 2 beams" in too_many.output
