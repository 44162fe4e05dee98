"""Sampling: argument checks, the filters on crafted logits, seeding, batching, streaming and stop strings."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlm.generation import sample as sample_mod
from rnnlm.core.config import ModelConfig
from rnnlm.core.errors import InputError
from rnnlm.model.network import RNNLM
from rnnlm.generation.sample import SamplingConfig, draw, generate_ids, generate_texts, next_ids, stream_text
from rnnlm.data.tokenizers.char import CharTokenizer

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer.\n"


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer.from_text(TEXT)


@pytest.fixture
def model(tok) -> RNNLM:
    """Random weights, scaled up so the distributions are peaked enough for greedy runs to differ from sampling."""
    torch.manual_seed(0)
    net = RNNLM(ModelConfig(cell="lstm", vocab_size=tok.vocab_size, embed_size=16, hidden_size=16, dropout=0.0))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)
    return net


def ids_of(model, prompt, **kwargs) -> torch.Tensor:
    return torch.stack(list(generate_ids(model, prompt, SamplingConfig(**kwargs))), dim=1)  # (B, length)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-0.1), "temperature must be ≥ 0 (0 = greedy), got -0.1"),
    (dict(temperature=math.nan), "temperature must be ≥ 0 (0 = greedy), got nan"),
    (dict(temperature=math.inf), "temperature must be ≥ 0"),
    (dict(top_k=-1), "top-k must be an integer ≥ 0 (0 = off), got -1"),
    (dict(top_p=0.0), "top-p must be in (0, 1], got 0.0"),
    (dict(top_p=1.5), "top-p must be in (0, 1], got 1.5"),
    (dict(top_p=math.nan), "top-p must be in (0, 1], got nan"),
    (dict(length=0), "length must be a positive integer, got 0"),
    (dict(num_samples=0), "num-samples must be a positive integer, got 0"),
    (dict(repetition_penalty=0.0), "repetition penalty must be > 0 (1 = off), got 0.0"),
    (dict(repetition_penalty=math.nan), "repetition penalty must be > 0 (1 = off), got nan"),
    (dict(seed=-1), "seed must be an integer"),
    (dict(stop=""), "stop string must not be empty"),
])
def test_config_rejects_bad_arguments(kwargs, message):
    with pytest.raises(InputError) as err:
        SamplingConfig(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_top_k_1_is_greedy(model, tok):
    prompt = tok.encode("To be")
    greedy = ids_of(model, prompt, temperature=0, length=40, num_samples=2)
    assert torch.equal(ids_of(model, prompt, top_k=1, temperature=1.3, length=40, num_samples=2, seed=5), greedy)
    assert not torch.equal(ids_of(model, prompt, temperature=1.0, length=40, seed=5), greedy[:1])


@pytest.mark.parametrize("top_k", [0, 1000])
def test_filters_off_draw_exactly_plain_sampling(top_k):
    torch.manual_seed(1)
    logits = torch.randn(3, 11)
    cfg = SamplingConfig(temperature=0.7, top_k=top_k, top_p=1.0)
    ours, plain = gen(9), gen(9)
    for _ in range(20):  # the generators stay in step: no extra random numbers consumed
        expected = draw(torch.softmax(logits / 0.7, dim=-1), plain)
        assert torch.equal(next_ids(logits, cfg, ours), expected)


def test_draw_follows_the_distribution_and_never_picks_zero_mass():
    probs = torch.tensor([[0.5, 0.0, 0.2, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0, 2.0]])  # rows need not sum to 1
    picks = torch.stack([draw(probs, gen(i)) for i in range(4000)])  # (N, 2)
    freq = torch.bincount(picks[:, 0], minlength=5).double() / len(picks)
    assert torch.allclose(freq, probs[0].double(), atol=0.03)
    assert (picks[:, 1] == 4).all()


def test_same_seed_same_text_other_seed_other_text(model, tok):
    cfg = SamplingConfig(temperature=1.0, length=60, seed=3)
    first = generate_texts(model, tok, "To", cfg)
    assert generate_texts(model, tok, "To", cfg) == first
    assert generate_texts(model, tok, "To", SamplingConfig(temperature=1.0, length=60, seed=4)) != first


def test_with_seed_draws_a_reusable_seed(model, tok):
    cfg = SamplingConfig(length=30).with_seed()
    assert isinstance(cfg.seed, int) and cfg.with_seed() is cfg
    assert generate_texts(model, tok, "", cfg) == generate_texts(model, tok, "", cfg)


def test_batch_shapes(model, tok):
    steps = list(generate_ids(model, tok.encode("To"), SamplingConfig(length=7, num_samples=3, seed=0)))
    assert len(steps) == 7 and all(s.shape == (3,) and s.dtype == torch.long for s in steps)
    texts = generate_texts(model, tok, "To", SamplingConfig(length=25, num_samples=4, seed=0))
    assert len(texts) == 4 and all(t.startswith("To") and len(t) == 27 for t in texts)
    assert len(set(texts)) > 1


def test_one_forward_call_for_the_prompt_then_one_per_step(model, tok):
    shapes = []
    model.register_forward_hook(lambda mod, args, out: shapes.append(tuple(args[0].shape)))
    list(generate_ids(model, tok.encode("To be"), SamplingConfig(length=6, num_samples=2, seed=0)))
    assert shapes == [(2, 5)] + [(2, 1)] * 5


def test_steps_avoid_onednn_and_the_flag_never_leaks(model, tok):
    flags = []
    model.register_forward_hook(lambda mod, args, out: flags.append(torch.backends.mkldnn.enabled))
    before = torch.backends.mkldnn.enabled
    for _ in generate_ids(model, tok.encode("To be"), SamplingConfig(length=4, seed=0)):
        assert torch.backends.mkldnn.enabled == before
    assert flags == [before, False, False, False]


def test_top_k_samples_only_the_k_most_likely():
    torch.manual_seed(2)
    logits = torch.randn(1, 20).expand(3000, -1)  # (N, V): many draws from one distribution
    drawn = set(next_ids(logits, SamplingConfig(temperature=2.0, top_k=3), gen(0)).tolist())
    assert drawn == set(torch.topk(logits[0], 3).indices.tolist())


@pytest.mark.parametrize("top_p, kept", [(0.4, {0}), (0.75, {0, 1}), (0.85, {0, 1, 2}), (0.99, {0, 1, 2, 3})])
def test_nucleus_keeps_the_smallest_set_reaching_p(top_p, kept):
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().expand(4000, -1)  # (N, 4)
    drawn = set(next_ids(logits, SamplingConfig(temperature=1.0, top_p=top_p), gen(0)).tolist())
    assert drawn == kept


def test_repetition_penalty_lowers_seen_tokens_per_sample():
    cfg = SamplingConfig(temperature=0, repetition_penalty=1.5)
    logits = torch.tensor([[2.0, 1.9, -3.0], [-1.0, -1.1, -3.0]]).repeat(2, 1)  # (4, 3)
    seen = torch.zeros(4, 3, dtype=torch.bool)
    seen[:2, 0] = True  # rows 2 and 3 have seen nothing
    assert next_ids(logits, cfg, gen(0), seen).tolist() == [1, 1, 0, 0]
    flat = torch.ones(4000, 5)  # (N, V): uniform before the penalty
    mask = torch.zeros(4000, 5, dtype=torch.bool)
    mask[:, 2] = True
    draws = next_ids(flat, SamplingConfig(temperature=1.0, repetition_penalty=2.0), gen(0), mask)
    assert (draws == 2).float().mean() < 0.15  # 0.2 without the penalty, ≈0.13 with it


@pytest.mark.parametrize("stop", [None, "e"])
@pytest.mark.parametrize("echo", [True, False])
def test_stream_concatenation_equals_generate_texts(model, tok, stop, echo):
    cfg = SamplingConfig(temperature=1.0, length=80, seed=11, stop=stop)
    streamed = list(stream_text(model, tok, "To be", cfg, echo=echo))
    assert "".join(streamed) == generate_texts(model, tok, "To be", cfg, echo=echo)[0]
    assert streamed[0] == "To be" if echo else not "".join(streamed).startswith("To be")


@pytest.mark.parametrize("flush_s", [0.0, 0.02])
def test_stop_string_ends_the_output_even_across_chunks(model, tok, monkeypatch, flush_s):
    monkeypatch.setattr(sample_mod, "FLUSH_EVERY_S", flush_s)
    full = generate_texts(model, tok, "", SamplingConfig(temperature=1.0, length=80, seed=7))[0]
    stop = full[30:33]
    expected = full[: full.find(stop) + 3]
    cfg = SamplingConfig(temperature=1.0, length=80, seed=7, stop=stop)
    chunks = list(stream_text(model, tok, "", cfg))
    assert "".join(chunks) == expected
    assert generate_texts(model, tok, "", cfg)[0] == expected
    if flush_s == 0.0:
        assert len(chunks) > 3  # one token per chunk: the stop string was split across chunks


def test_batch_samples_stop_independently(model, tok):
    """Each sample is its unstopped draw cut after its own first stop string: a stopped sample neither ends the
    others nor shifts their random draws."""
    settings = dict(temperature=1.0, length=60, num_samples=3, seed=2)
    unstopped = generate_texts(model, tok, "T", SamplingConfig(**settings), echo=False)
    cuts = [text.find("e") + 1 for text in unstopped]
    assert len(unstopped) == 3 and len(set(cuts)) == 3 and 0 not in cuts  # three samples stop, at three places
    stopped = generate_texts(model, tok, "T", SamplingConfig(**settings, stop="e"), echo=False)
    assert stopped == [text[:cut] for text, cut in zip(unstopped, cuts)]


def test_unknown_prompt_character_names_it(model, tok):
    with pytest.raises(InputError, match="'Z'"):
        stream_text(model, tok, "Zebra", SamplingConfig())
    with pytest.raises(InputError, match="'Z'"):
        generate_texts(model, tok, "Zebra", SamplingConfig())


def test_prompt_ids_out_of_range(model):
    with pytest.raises(InputError, match="prompt ids"):
        generate_ids(model, [model.config.vocab_size], SamplingConfig())


def test_empty_prompt_primes_with_bos_which_is_not_output(model, tok):
    newline = int(tok.encode("\n")[0])
    cfg = SamplingConfig(length=12, seed=1)
    with_bos = torch.stack(list(generate_ids(model, [], cfg, bos_id=newline)))  # (length, 1)
    assert with_bos.shape == (12, 1)
    assert torch.equal(with_bos, torch.stack(list(generate_ids(model, [newline], cfg))))
    assert torch.equal(torch.stack(list(generate_ids(model, [], cfg))), torch.stack(list(generate_ids(model, [0], cfg))))


def test_streaming_rejects_batches(model, tok):
    with pytest.raises(InputError, match="num-samples"):
        stream_text(model, tok, "To", SamplingConfig(num_samples=2))


def test_training_mode_restored_even_when_stopped_early(model, tok):
    model.train()
    stream = stream_text(model, tok, "To", SamplingConfig(length=50, seed=0), echo=False)
    next(stream)
    assert not model.training
    stream.close()
    assert model.training
    generate_texts(model, tok, "To", SamplingConfig(length=5))
    assert model.training
