"""``rnnlm score`` and ``LanguageModel.score``: one stream from a fresh state, equal to ``eval --streams 1``;
strings, files and stdin; per line and per character; characters outside the vocabulary; CHECKPOINT vs TEXT."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

import rnnlm
from rnnlm.cli import cli
from rnnlm.core.errors import InputError

TINY = ["--hidden", "16", "--embed", "8", "--bptt", "8", "--batch-size", "4", "--precision", "fp32", "--threads", "1"]
LINES = "All:\nSpeak, speak.\nzkyw wkzy ywkz\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def records(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith(("error", "Error"))]) == 1


def test_score_of_a_file_equals_eval_of_it_as_one_stream(tiny_run, tiny_corpus):
    scored, = records(run("score", tiny_run, tiny_corpus, "--json"))
    evaluated = json.loads(run("eval", tiny_run, tiny_corpus, "--streams", 1, "--json").stdout)
    assert abs(scored["bpc"] - evaluated["bpc"]) < 1e-6
    assert scored["chars"] == evaluated["chars"] == len(tiny_corpus.read_text(encoding="utf-8")) - 1
    assert scored["context_chars"] == 1 and scored["source"] == "file" and evaluated["streams"] == 1
    default = json.loads(run("eval", tiny_run, tiny_corpus, "--json").stdout)
    assert default["streams"] == 4 and default["chars"] == scored["chars"]  # streams overlap by one: same characters
    assert default["bpc"] != scored["bpc"]  # but three of them start from a fresh state


def test_stdin_and_several_texts_each_score_as_their_own_stream(tiny_run):
    piped, = records(run("score", tiny_run, "-", "--json", input="All:\nSpeak, speak.\n"))
    texts = records(run("score", tiny_run, "All:\nSpeak, speak.\n", "Speak, speak.", "All:", "--json"))
    assert piped["source"] == "stdin" and [r["source"] for r in texts] == ["string"] * 3
    assert [r["text"] for r in texts] == ["All:\nSpeak, speak.\n", "Speak, speak.", "All:"]
    assert piped["bpc"] == pytest.approx(texts[0]["bpc"], abs=1e-9)
    assert [r["chars"] for r in texts] == [18, 12, 3]  # each loses only its own first character
    table = run("score", tiny_run, "Speak, speak.", "All:")
    assert table.exit_code == 0, table.output
    assert '"Speak, speak."' in table.stdout and '"All:"' in table.stdout and "first character" in table.stdout


def test_lines_are_ranked_most_surprising_first_and_top_keeps_the_worst(tiny_run, tmp_path):
    text = tmp_path / "odd.txt"
    text.write_text(LINES, encoding="utf-8")
    scored, = records(run("score", tiny_run, text, "--lines", "--json"))
    lines = scored["lines"]
    assert sorted(line["line"] for line in lines) == [1, 2, 3, 4, 5]
    assert [line["bpc"] for line in lines] == sorted((line["bpc"] for line in lines), reverse=True)
    assert lines[0]["line"] == 3 and lines[0]["text"] == "zkyw wkzy ywkz"
    assert sum(line["bits"] for line in lines) == pytest.approx(scored["bits"], rel=1e-5)
    assert sum(line["chars"] for line in lines) == scored["chars"]  # each line owns its newline; line 1 its context
    top, = records(run("score", tiny_run, text, "--lines", "--top", 1, "--json"))
    assert [line["line"] for line in top["lines"]] == [3]
    table = run("score", tiny_run, text, "--lines", "--top", 2)
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if line.startswith("│")]
    assert "zkyw wkzy ywkz" in rows[0] and "(2 of 5)" in table.stdout


def test_characters_outside_the_vocabulary_are_named_or_left_out_and_counted(tiny_run):
    assert_one_line_error(run("score", tiny_run, "Zeal✓ speak"), "'Z' (U+005A), '✓' (U+2713)")
    assert "--skip-unknown" in run("score", tiny_run, "Zeal✓ speak").output
    with pytest.warns(UserWarning, match="left out 2 characters not in the vocabulary"):
        scored, = records(run("score", tiny_run, "Zeal✓ speak", "--skip-unknown", "--json", "--per-char"))
    assert scored["skipped"] == 2 and scored["unknown"] == ["Z", "✓"] and scored["text_chars"] == 11
    assert scored["chars"] == 11 - 2 - 1  # the first kept character ('e') is the context
    pairs = scored["per_char"]
    assert "".join(c for c, _ in pairs) == "Zeal✓ speak"
    assert [c for c, bits in pairs if bits is None] == ["Z", "e", "✓"]


def test_a_vocabulary_with_unk_scores_unknown_characters_as_unk(tiny_corpus, tmp_path):
    out = tmp_path / "unk"
    trained = run("train", tiny_corpus, "--max-steps", 4, "--min-char-count", 2, "--out", out, *TINY)
    assert trained.exit_code == 0, trained.output
    with pytest.warns(UserWarning, match="3 characters .2 distinct. not in the vocabulary scored as <unk>"):
        scored, = records(run("score", out, "All: speak ж¿ ж", "--json"))
    assert scored["unk"] == 3 and scored["skipped"] == 0 and scored["chars"] == len("All: speak ж¿ ж") - 1
    assert scored["unknown"] == ["¿", "ж"]
    skipped, = records(run("score", out, "All: speak ж¿ ж", "--json", "--skip-unknown"))
    assert skipped["skipped"] == 3 and skipped["unk"] == 0


def test_per_character_and_per_line_bits_sum_to_the_total(tiny_run):
    lm = rnnlm.load(tiny_run, device="cpu")
    result = lm.score(LINES, per_char=True, lines=True)
    assert result.per_char[0] is None and all(bits is not None and bits > 0 for bits in result.per_char[1:])
    assert len(result.per_char) == len(LINES) == result.text_chars == result.chars + 1
    assert sum(result.per_char[1:]) == pytest.approx(result.bits, rel=1e-5)
    assert sum(line.bits for line in result.lines) == pytest.approx(result.bits, rel=1e-5)
    assert [line.text for line in result.lines] == LINES.splitlines()
    assert result.bpc == pytest.approx(lm.evaluate(LINES, streams=1).bpc, abs=1e-9)
    plain = lm.score(LINES)
    assert plain.per_char is None and plain.lines is None and plain.bpc == result.bpc
    with pytest.raises(InputError, match="too little text"):
        lm.score("A")
    with pytest.raises(InputError, match="--streams must be at least 1"):
        lm.evaluate(LINES, streams=0)


def test_a_subword_model_spreads_its_pieces_bits_over_their_characters(tiny_corpus, tmp_path):
    from conftest import TINY_MODEL, TINY_TRAIN

    config = rnnlm.TrainConfig(**{**TINY_TRAIN, "tokenizer": "bpe", "vocab_size": 320})
    rnnlm.train(tiny_corpus, model=rnnlm.ModelConfig(**TINY_MODEL), config=config, out=tmp_path / "bpe")
    lm = rnnlm.load(tmp_path / "bpe", device="cpu")
    text = "First Citizen:\nSpeak, speak. 한국어 텍스트 🙂 é\n"
    result = lm.score(text, per_char=True, lines=True)
    assert len(result.per_char) == len(text) and result.chars == len(text) - result.context_chars
    assert result.per_char[result.context_chars] is not None and result.per_char[0] is None
    assert sum(b for b in result.per_char if b is not None) == pytest.approx(result.bits, rel=1e-5)
    assert result.bpc == pytest.approx(lm.evaluate(text, streams=1).bpc, abs=1e-9)


def test_the_first_argument_is_a_checkpoint_only_if_it_is_a_safetensors_file_or_a_directory(tiny_run, tiny_corpus,
                                                                                            tmp_path):
    shutil.copytree(tiny_run, tmp_path / "checkpoints" / "tiny")  # the newest run under ./checkpoints
    newest = run("score", tiny_corpus, "All:", "--json")
    assert "using checkpoints/tiny/best.safetensors" in newest.stderr
    assert [r["source"] for r in records(newest)] == ["file", "string"]  # the file was a TEXT, not a checkpoint
    named = records(run("score", tiny_run / "best.safetensors", tiny_corpus, "--json"))
    assert named[0]["bpc"] == pytest.approx(records(newest)[0]["bpc"], abs=1e-9)
    assert_one_line_error(run("score", "missing.safetensors", "All:"), "checkpoint not found")
    assert_one_line_error(run("score", tiny_run), "give at least one TEXT")
    assert_one_line_error(run("score", tiny_run, "All:", tmp_path), "is a directory")
    with pytest.warns(UserWarning, match="'notes.md' names no file"):
        assert records(run("score", tiny_run, "notes.md", "--json"))[0]["source"] == "string"


def test_bad_input_is_one_line_and_exit_2(tiny_run, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("hello caf\xe9".encode("latin-1"))
    assert_one_line_error(run("score", tiny_run, latin1), "not valid UTF-8 at byte offset 9")
    assert_one_line_error(run("score", tiny_run, "-", input=b"ok\xff"), "stdin is not valid UTF-8 at byte offset 2")
    assert_one_line_error(run("score", tiny_run, "-", "-", input="All:"), "only once")
    assert_one_line_error(run("score", tiny_run, "A"), '"A": too little text to score')
    assert_one_line_error(run("score", tiny_run, "All:", "--top", 0), "--top")
    assert_one_line_error(run("eval", tiny_run, "--streams", 0), "--streams")
