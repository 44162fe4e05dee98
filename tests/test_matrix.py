"""{char, bpe, unigram} × {rnn, lstm, gru}: train a tiny model, save, load, generate, evaluate."""

from __future__ import annotations

import pytest

import rnnlm

pytestmark = pytest.mark.slow  # every tokenizer × cell through the CLI: `-m 'not slow'` leaves them out

ENGLISH = "The quick brown fox jumps over the lazy dog.\n\tTabs  and   spaces stay.\n"
KOREAN = "동해 물과 백두산이 마르고 닳도록\n하느님이 보우하사 우리나라 만세.\n"
EMOJI = "🙂 ok 🚀🚀 👩‍👩‍👧 family — e\u0301 ✨\n"
CORPUS = (ENGLISH * 20 + KOREAN * 20 + EMOJI * 20) * 2


@pytest.mark.parametrize("tokenizer", ["char", "bpe", "unigram"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_train_save_load_generate_evaluate(tmp_path, tokenizer, cell):
    corpus = tmp_path / "mixed.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    config = rnnlm.TrainConfig(batch_size=4, bptt=8, max_time_s=None, max_steps=8, warmup_steps=2, eval_streams=4,
                               eval_every_s=1e9, precision="fp32", device="cpu", tokenizer=tokenizer,
                               vocab_size={"char": 0, "bpe": 340, "unigram": 324}[tokenizer], split=(0.8, 0.1, 0.1))
    model = rnnlm.ModelConfig(cell=cell, embed_size=8, hidden_size=16, num_layers=2, dropout=0.0)
    summary = rnnlm.train(corpus, model=model, config=config, out=tmp_path / "run")
    lm = rnnlm.load(tmp_path / "run")
    assert lm.tokenizer.kind == tokenizer and lm.config.cell == cell
    for text in (ENGLISH, KOREAN, EMOJI):
        assert lm.tokenizer.decode(lm.tokenizer.encode(text)) == text
    sample = lm.generate("동해", length=30, seed=1)
    assert sample.startswith("동해") and sample == lm.generate("동해", length=30, seed=1)
    streamed = "".join(lm.stream("동해", length=30, seed=1))
    assert streamed == sample
    result = lm.evaluate(EMOJI * 3)
    assert result.chars == len(EMOJI * 3) - len(lm.tokenizer.decode(lm.tokenizer.encode(EMOJI)[:1]))
    assert 0 < result.bpc < 20
    assert abs(lm.evaluate_split("val").bpc - summary["best_val_bpc"]) < 1e-4
