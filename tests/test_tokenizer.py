"""Char and sentencepiece tokenizers: exact round-trips, unknown characters, checkpoint state, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers.subword import SentencePieceTokenizer
from rnnlm.data.tokenizers.char import CharTokenizer, StreamDecoder
from rnnlm.data.tokenizers import tokenizer_from_state

SAMPLES = [
    "The quick brown fox jumps over the lazy dog.",
    "안녕하세요, 세계!",
    "🙂🚀👩‍👩‍👧 ok",
    "cafe\u0301 and caf\u00e9",
    "tab\there\t\tand\ttabs",
    "runs   of     spaces  ",
    "  leading spaces",
    "windows\r\nline\r\nends\r\n",
    "newline runs\n\n\n\nend\n",
    "",
]
UNSEEN = ["unseen: Ж 漢字 ∑ 🦀", "literal ▁ and ␤ symbols", "\n\n", "\r"]


def _corpus() -> str:
    rng = np.random.default_rng(0)
    words = ("the of and to in a is that for it as was with be by on not he this are or his from at which "
             "but have an they you were her she there been one all we their 안녕하세요 세계 한국어 🙂 🚀 "
             "café naïve e\u0301 \t tab  two").split(" ")
    lines = [" ".join(rng.choice(words, 10).tolist()) for _ in range(250)]
    return "\n".join(lines) + "\r\n" + "\n".join(SAMPLES) + "\n\n\n"


@pytest.fixture(scope="module")
def corpus() -> str:
    return _corpus()


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def spm_tok(request, corpus) -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(corpus, request.param, 320)


@pytest.mark.parametrize("text", SAMPLES)
def test_char_round_trip(corpus, text):
    tok = CharTokenizer.from_text(corpus)
    ids = tok.encode(text)
    assert ids.dtype == np.uint8 and len(ids) == len(text)
    assert tok.decode(ids) == text


@pytest.mark.parametrize("text", SAMPLES + UNSEEN)
def test_sentencepiece_round_trip(spm_tok, text):
    ids = spm_tok.encode(text)
    assert ids.dtype == np.uint16
    assert spm_tok.decode(ids) == text
    assert int(spm_tok.char_lengths()[ids].sum()) == len(text)  # the bpc denominator


def test_sentencepiece_round_trips_its_corpus(spm_tok, corpus):
    assert spm_tok.decode(spm_tok.encode(corpus)) == corpus


def test_sentencepiece_newline_symbol_avoids_corpus_chars():
    tok = SentencePieceTokenizer.train(_corpus() + "\u2424 appears here\n", "bpe", 330)
    assert tok.newline != "\u2424" and tok.to_dict()["newline"] == tok.newline
    text = "a\u2424b\nc"
    assert tok.decode(tok.encode(text)) == text


def test_sentencepiece_vocab_size_errors(corpus):
    with pytest.raises(InputError, match=r"vocab size 20000 is too large for this corpus; try ≤ \d+"):
        SentencePieceTokenizer.train(corpus, "unigram", 20000)
    with pytest.raises(InputError, match=r"too small for this corpus; it needs at least \d+"):
        SentencePieceTokenizer.train(corpus, "bpe", 50)


def test_sentencepiece_trains_on_a_single_long_line():
    text = "no newline at all, just one long line of words " * 400
    tok = SentencePieceTokenizer.train(text, "bpe", 300)
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) < len(text) / 2  # it learned merges from the cut pieces


def test_unknown_characters_are_named(corpus):
    tok = CharTokenizer.from_text("abc ")
    with pytest.raises(InputError, match=r"not in the vocabulary: 'ü' \(U\+00FC\), '🙂' \(U\+1F642\)"):
        tok.encode("a ü b 🙂 ü")
    assert tok.unknown_chars("a ü b 🙂 ü") == ["ü", "🙂"]
    with pytest.raises(InputError, match="no <unk>"):
        tok.encode("ü", unknown="unk")


def test_min_char_count_maps_rare_chars_to_unk():
    tok = CharTokenizer.from_text("aaaa bbbb cc d é", min_char_count=3)
    assert tok.unk_id == 0 and tok.chars == " ab"
    assert tok.unknown_count == 4 and tok.rare_chars == "cdé"
    ids = tok.encode("abcé", unknown="unk")
    assert ids.tolist() == [2, 3, 0, 0]
    assert tok.decode(ids) == "ab\ufffd\ufffd"
    assert CharTokenizer.from_text("aaaa", min_char_count=3).unk_id is None  # nothing rare: no <unk>


@pytest.mark.parametrize("size, dtype", [(1, np.uint8), (256, np.uint8), (257, np.uint16), (70000, np.uint32)])
def test_ids_use_the_smallest_dtype(size, dtype):
    chars = "".join(chr(0x100 + i) for i in range(size))
    tok = CharTokenizer.from_text(chars)
    ids = tok.encode(chars)
    assert tok.vocab_size == size and ids.dtype == dtype
    assert ids.tolist() == list(range(size)) and tok.decode(ids) == chars


@pytest.mark.parametrize("kind", ["char", "char-unk", "bpe", "unigram"])
def test_state_round_trip(kind, corpus):
    if kind.startswith("char"):
        tok = CharTokenizer.from_text(corpus, min_char_count=3 if kind == "char-unk" else 0)
    else:
        tok = SentencePieceTokenizer.train(corpus, kind, 320)
    tensors = {k: torch.from_numpy(v.copy()) for k, v in tok.tensors().items()}  # as a checkpoint returns them
    again = tokenizer_from_state(tok.to_dict(), tensors)
    assert again.to_dict() == tok.to_dict()
    unknown = "unk" if tok.unk_id is not None else "error"
    assert np.array_equal(again.encode(corpus, unknown), tok.encode(corpus, unknown))


def test_bad_state_is_an_input_error():
    with pytest.raises(InputError, match="unknown tokenizer kind"):
        tokenizer_from_state({"kind": "wordpiece"}, {})
    with pytest.raises(InputError, match="corrupted checkpoint"):
        tokenizer_from_state({"kind": "bpe", "newline": "\u2424"}, {})


def _push_randomly(decoder: StreamDecoder, ids: np.ndarray, rng: np.random.Generator) -> list[str]:
    pieces, start = [], 0
    while start < len(ids):
        stop = start + int(rng.integers(0, 4))
        pieces.append(decoder.push(ids[start:stop]))
        start = stop
    return pieces + [decoder.flush()]


def test_stream_decoder_matches_decode(spm_tok):
    rng = np.random.default_rng(1)
    byte_ids = np.flatnonzero(spm_tok.byte_values >= 0)
    for _ in range(200):
        ids = rng.integers(0, spm_tok.vocab_size, 30)
        mostly_bytes = rng.random(30) < 0.7
        ids[mostly_bytes] = rng.choice(byte_ids, int(mostly_bytes.sum()))
        pieces = _push_randomly(StreamDecoder(spm_tok), ids, rng)
        assert "".join(pieces) == spm_tok.decode(ids)


def test_stream_decoder_never_emits_half_a_character(spm_tok):
    text = "🦀 Ж 漢字 🙂 unseen"
    ids = spm_tok.encode(text)
    assert spm_tok.byte_values[ids].max() >= 0x80  # some characters really go through byte fallback
    decoder = StreamDecoder(spm_tok)
    pieces = [decoder.push([i]) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == text and "\ufffd" not in "".join(pieces)


def test_stream_decoder_char(corpus):
    tok = CharTokenizer.from_text(corpus)
    ids = tok.encode(corpus)
    pieces = _push_randomly(StreamDecoder(tok), ids, np.random.default_rng(2))
    assert "".join(pieces) == corpus


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_char_round_trip_property(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids.dtype == np.uint8 or tok.vocab_size > 256
