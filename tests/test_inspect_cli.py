"""``rnnlm inspect`` end to end: the Python API's arrays, the CLI's JSON and summary, bad input, subwords, page size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rnnlm
from rnnlm.cli import cli
from rnnlm.core.config import ModelConfig, TrainConfig
from rnnlm.core.errors import InputError
from rnnlm.evaluation.metrics import evaluate_ids
from rnnlm.inspection.report import INSPECT_SCHEMA
from rnnlm.generation.language_model import load
from schema import validate


def _corpus(run: Path) -> Path:
    return run.parent / "tiny.txt"  # the file the shared tiny run trained on (conftest.tiny_run)



def test_the_validator_catches_a_wrong_type_and_a_missing_key():
    with pytest.raises(AssertionError, match="missing 'bpc'"):
        validate({"ngram": {"name": "x"}}, {"properties": {"ngram": INSPECT_SCHEMA["properties"]["ngram"]}})
    with pytest.raises(AssertionError, match="is not"):
        validate({"layers": "2"}, {"properties": {"layers": INSPECT_SCHEMA["properties"]["layers"]}})


def _page_data(page: Path) -> dict:
    """The JSON the page's script reads."""
    html = page.read_text(encoding="utf-8")
    start = html.index("id='rnnlm-data'>") + len("id='rnnlm-data'>")
    return json.loads(html[start : html.index("</script>", start)])


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_api_returns_per_step_arrays_consistent_with_the_model(tiny_run):
    lm = load(tiny_run, device="cpu")
    text = _corpus(tiny_run).read_text(encoding="utf-8")
    insp = rnnlm.inspect(lm, _corpus(tiny_run), max_k=64)
    n = len(text)
    assert insp.text == text and insp.start == 0 and insp.warmup_chars == 0  # a short file: all of it, no warm-up
    assert {k: v.shape for k, v in insp.signals.items()} == {k: (2, n, 16) for k in "hcifgo"}
    assert insp.bits.shape == (n,) and insp.top_ids.shape == (n, 5) and insp.ngram_bits.shape == (n,)
    assert np.all(np.diff(insp.top_probs, axis=1) <= 0) and np.all(insp.top_probs.sum(axis=1) <= 1 + 1e-6)
    assert insp.saturation["f"].shape == (2, 16, 2) and set(insp.saturation) == {"i", "f", "o"}
    assert insp.reach.norms.shape == (2, 64) and np.all(insp.reach.norms > 0)
    # The bits are the model's own loss: the fused evaluation of "\n" + text (the page primes with a newline) agrees.
    ids = np.concatenate([lm.tokenizer.encode("\n"), lm.tokenizer.encode(text)])
    fused = evaluate_ids(lm.module, ids, streams=1)
    assert insp.bits.sum() * math.log(2) == pytest.approx(fused.nats, rel=1e-4)
    assert insp.char_signal("h", 1, 3).tolist() == insp.signals["h"][1, :, 3].tolist()


def test_cli_json_follows_the_schema_and_writes_page_and_npz(tiny_run, tmp_path):
    page, npz = tmp_path / "out" / "page.html", tmp_path / "arrays.npz"
    page.parent.mkdir()  # an output file's folder must exist (rnnlm makes none for a file)
    result = _invoke("inspect", tiny_run, _corpus(tiny_run), "--out", page, "--npz", npz, "--json",
                     "--feature", "speaker=^[A-Z][a-z]+( [A-Z][a-z]+)?:$", "--units", "L2u5", "--max-k", "32")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    validate(record, INSPECT_SCHEMA, "inspect")
    assert record["page"] == str(page) and page.stat().st_size > 10_000 and "wrote" in result.stderr
    assert record["text"]["chars"] == len(_corpus(tiny_run).read_text(encoding="utf-8"))
    assert record["gradient_reach"]["max_k"] == 32 and len(record["gradient_reach"]["norms"]) == 2
    names = [f["name"] for f in record["features"]]
    assert names[-1] == "speaker" and "position in line" in names
    assert record["ngram"]["name"] == "5-gram Kneser-Ney" and record["wins"]
    arrays = np.load(npz)
    assert arrays["signal_c"].shape[:2] == (2, record["text"]["tokens"]) and "feature_speaker" in arrays
    assert arrays["gradient_reach"].shape == (2, 32)
    data = _page_data(page)
    assert data["reach"] is not None and data["reach"]["maxK"] == 32 and len(data["reach"]["norms"]) == 2
    assert "1:5" in data["extra"] and set(data["extra"]["1:5"]) == {"c", "i", "f", "g", "o"}  # L2u5: layer index 1


def test_cli_summary_lists_features_and_the_gradient_reach(tiny_run, tmp_path):
    result = _invoke("inspect", tiny_run, _corpus(tiny_run), "--out", tmp_path / "p.html", "--max-k", "16")
    assert result.exit_code == 0, result.output
    assert "position in line" in result.stdout and "gradient reach (top layer)" in result.stdout
    assert "bits per character: model" in result.stdout
    assert "scoring units" in result.stderr and "scoring units" not in result.stdout  # progress goes to stderr


@pytest.mark.parametrize("args, message", [
    (["--feature", "bad=("], "not a valid regular expression"),
    (["--units", "L0u3"], "is not a unit"),
    (["--units", "L3u0"], "does not exist"),
    (["--units", "99"], "does not exist"),
    (["--start", "999999"], "outside the text"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_run, tmp_path, args, message):
    result = _invoke("inspect", tiny_run, _corpus(tiny_run), "--out", tmp_path / "p.html", "--max-k", "4", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_bad_files_are_one_line_and_exit_2(tiny_run, tmp_path):
    foreign = tmp_path / "euro.txt"
    foreign.write_text("price: 5 € only\n" * 5, encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    for file, message in ((foreign, "'€' (U+20AC)"), (latin1, "not valid UTF-8"), (tmp_path / "none.txt", "file to inspect not found")):
        result = _invoke("inspect", tiny_run, file, "--out", tmp_path / "p.html")
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "p.html").exists()


def test_without_the_corpus_the_ngram_track_is_left_out_with_a_note(tiny_run):
    lm = load(tiny_run, device="cpu")
    lm.meta = {**lm.meta, "corpus": {**lm.meta["corpus"], "paths": ["/nonexistent/tiny.txt"]}}
    insp = rnnlm.inspect(lm, _corpus(tiny_run), max_k=4)
    assert insp.ngram_bits is None and "not at hand" in insp.ngram_note and insp.to_dict()["ngram"] is None
    with pytest.raises(InputError, match="pass the text to inspect as FILE"):
        rnnlm.inspect(lm)  # the validation split lives in the missing corpus


def test_subword_tokens_spread_their_bits_and_signals_over_their_characters(tmp_path):
    from conftest import TINY_TEXT
    from rnnlm.training.run import train

    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    config = TrainConfig(batch_size=2, bptt=8, max_time_s=None, max_steps=3, warmup_steps=1, calibrate_steps=2,
                         eval_every_s=1000.0, eval_streams=2, precision="fp32", device="cpu", tokenizer="bpe", vocab_size=300)
    train(corpus, model=ModelConfig(cell="gru", embed_size=8, hidden_size=8, dropout=0.0), config=config,
          out=tmp_path / "run", threads=1)
    insp = rnnlm.inspect(tmp_path / "run", corpus, max_k=8)
    assert insp.tokenizer == "bpe" and len(insp.ids) < len(insp.text) == len(TINY_TEXT)
    assert insp.bits.sum() == pytest.approx(insp.token_bits.sum())
    assert np.all(np.diff(insp.token_of_char) >= 0) and insp.signals["h"].shape[1] == len(insp.ids)
    data = _page_data(insp.write_page(tmp_path / "p.html"))
    assert data["tokenOfChar"] == insp.token_of_char.tolist() and data["steps"] == len(insp.ids)


def test_a_5000_character_page_for_a_1x512_lstm_stays_under_3_mb(tmp_path):
    """The page's size depends on shapes alone: random signals (incompressible) at the largest the finder lists."""
    from conftest import TINY_TEXT
    from rnnlm.inspection.features import builtin_features
    from rnnlm.inspection.gradreach import GradientReach
    from rnnlm.inspection.inspector import Inspection

    rng = np.random.default_rng(0)
    n, hidden = 5000, 512
    text = (TINY_TEXT * 3)[:n]
    signals = {name: rng.uniform(-1 if name in "hcg" else 0, 1, (1, n, hidden)).astype(np.float32) for name in "hcifgo"}
    insp = Inspection(
        checkpoint="run/best.safetensors", cell="lstm", num_layers=1, hidden_size=hidden, tokenizer="char", text=text,
        source="text", start=0, warmup_chars=0, ids=np.arange(n), token_of_char=np.arange(n), signals=signals,
        token_bits=rng.uniform(0, 8, n), top_ids=rng.integers(0, 65, (n, 5)), top_probs=rng.uniform(0, 1, (n, 5)),
        vocabulary=[chr(32 + i) for i in range(65)], bits=rng.uniform(0, 8, n), features=builtin_features(text), found=[],
        threshold=0.5, saturation={g: rng.uniform(0, 1, (1, hidden, 2)) for g in "ifo"},
        reach=GradientReach(rng.uniform(1e-6, 1, (1, 256)), 32), ngram_bits=rng.uniform(0, 8, n), ngram_name="5-gram")
    units = [(0, u) for u in range(0, hidden, 16)]  # 32 units with every signal: more than 3 per built-in feature
    size = insp.write_page(tmp_path / "p.html", units).stat().st_size
    assert 1_500_000 < size < 3_000_000
