"""``rnnlm compare``: parameter matching, results.json against its schema, resuming without retraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnlm.cli import cli
from rnnlm.experiments.compare import RESULTS_SCHEMA, group_runs, plan, run_comparison
from rnnlm.core.config import TrainConfig
from rnnlm.core.errors import InputError
from schema import validate

BUDGET = {"max_time_s": None, "max_steps": 3, "epochs": None}
BASE = TrainConfig(batch_size=4, bptt=8, warmup_steps=1, calibrate_steps=2, eval_every_s=1e9, eval_streams=4,
                   precision="fp32", device="cpu", split=(0.8, 0.1, 0.1))



def test_validator_catches_a_missing_field():
    with pytest.raises(AssertionError, match="missing 'groups'"):
        validate({"corpus": [], "budget": {"max_time_s": 1, "max_steps": None}, "match": "params", "params_target": 1,
                  "runs": [], "baselines": [], "created": ""}, RESULTS_SCHEMA)


@pytest.mark.parametrize("layers", [1, 2])
def test_match_params_keeps_counts_within_five_percent(layers):
    rows = plan(["rnn", "lstm", "gru"], [layers], "params", 0, 1_000_000, {"char": 65, "bpe": 1000}, 64)
    counts = [r["params"] for r in rows]
    assert max(counts) / min(counts) < 1.05
    widths = {(r["tokenizer"], r["cell"]): r["hidden"] for r in rows}
    assert widths["char", "rnn"] > widths["char", "gru"] > widths["char", "lstm"]  # 1, 3 and 4 gate blocks
    assert widths["bpe", "lstm"] < widths["char", "lstm"]  # the subword vocabulary's rows come out of the width


def test_groups_average_seeds_and_pass_the_ngram_only_when_every_seed_did():
    def run(seed, bpc, passed):
        return {"cell": "gru", "layers": 1, "hidden": 8, "params": 100, "tokenizer": "char", "best_val_bpc": bpc,
                "test_bpc": bpc, "test_perplexity": 2.0, "chars_per_s": 10.0, "train_time_s": 1.0, "seed": seed,
                "beats_ngram_min": passed}

    (group,) = group_runs([run(0, 2.0, 1.5), run(1, 2.2, 2.5)])
    assert group["seeds"] == 2 and group["test_bpc_mean"] == pytest.approx(2.1)
    assert group["test_bpc_std"] == pytest.approx(0.1414, abs=1e-3) and group["beats_ngram_min"] == 2.5
    assert group_runs([run(0, 2.0, 1.5), run(1, 2.2, None)])[0]["beats_ngram_min"] is None


def test_match_hidden_keeps_widths():
    rows = plan(["rnn", "lstm"], [1], "hidden", 48, None, {"char": 65}, 16)
    assert [r["hidden"] for r in rows] == [48, 48] and rows[0]["params"] < rows[1]["params"]


def _compare(corpus: Path, out: Path, trained: list[str], **kwargs):
    return run_comparison([corpus], out, cells=["rnn", "gru"], layers=[1], match="hidden", hidden=16,
                          params_target=None, seeds=1, budget=BUDGET, base=BASE, embed=8, dropout=0.0,
                          callbacks_for=lambda name: trained.append(name) or [], **kwargs)


def test_results_validate_and_rerun_skips_finished_runs(tiny_corpus, tmp_path):
    out = tmp_path / "cmp"
    trained: list[str] = []
    results = _compare(tiny_corpus, out, trained)
    assert trained == ["rnn-L1-h16-s0", "gru-L1-h16-s0"]
    validate(json.loads((out / "results.json").read_text()), RESULTS_SCHEMA)
    assert (out / "curves.png").stat().st_size > 10_000
    assert [b["name"] for b in results["baselines"]] == ["unigram", "5-gram Kneser-Ney"]
    assert [run["name"] for run in results["runs"]] == trained  # so the checks over them below check two runs
    assert all(run["beats_ngram_min"] is None for run in results["runs"])  # 3 steps never beat a 5-gram on repeated text
    for run in results["runs"]:
        assert Path(run["run_dir"], "best.safetensors").exists() and run["steps"] == 3
    # An interrupted comparison: the second run never finished.
    (out / "gru-L1-h16-s0" / "done.json").unlink()
    (out / "results.json").unlink()
    kept = (out / "rnn-L1-h16-s0" / "best.safetensors").stat().st_mtime_ns
    again: list[str] = []
    rerun = _compare(tiny_corpus, out, again)
    assert again == ["gru-L1-h16-s0"]
    assert (out / "rnn-L1-h16-s0" / "best.safetensors").stat().st_mtime_ns == kept
    assert rerun["runs"][0] == results["runs"][0]


def test_tokenizer_axis_ranks_subwords_on_the_character_scale(tmp_path):
    from test_matrix import CORPUS

    corpus = tmp_path / "mixed.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    trained: list[str] = []
    results = run_comparison([corpus], tmp_path / "cmp", cells=["lstm"], layers=[1], match="hidden", hidden=16,
                             params_target=None, seeds=1, budget=BUDGET, base=BASE.replace(vocab_size=340), embed=8,
                             dropout=0.0, tokenizers=["char", "bpe"], callbacks_for=lambda n: trained.append(n) or [])
    assert trained == ["lstm-L1-h16-s0", "lstm-L1-h16-bpe340-s0"]
    validate(results, RESULTS_SCHEMA)
    by_tok = {r["tokenizer"]: r for r in results["runs"]}
    assert by_tok["bpe"]["vocab_size"] == 340 and by_tok["char"]["vocab_size"] < 100
    assert by_tok["bpe"]["chars_per_s"] > by_tok["bpe"]["tokens_per_s"]  # a subword spells several characters
    assert all(0 < r["test_bpc"] < 20 for r in results["runs"])


def test_subwords_without_vocab_size_and_two_fraction_split_are_refused(tiny_corpus, tmp_path):
    with pytest.raises(InputError, match="--vocab-size"):
        _compare(tiny_corpus, tmp_path / "a", [], tokenizers=["bpe"])
    with pytest.raises(InputError, match="test split"):
        run_comparison([tiny_corpus], tmp_path / "b", cells=["rnn"], layers=[1], match="hidden", hidden=16,
                       params_target=None, seeds=1, budget=BUDGET, base=BASE.replace(split=(0.9, 0.1)), embed=8,
                       dropout=0.0)


def test_cli_compare_prints_the_table_and_says_what_it_skipped(tiny_corpus, tmp_path):
    args = ["compare", str(tiny_corpus), "--cells", "rnn,lstm", "--layers", "1", "--budget", "3steps", "--match",
            "hidden", "--hidden", "16", "--embed", "8", "--bptt", "8", "--batch-size", "4", "--split", "0.8,0.1,0.1",
            "--precision", "fp32", "--out", str(tmp_path / "cmp")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "Kneser" in first.output and "match hidden" in first.output
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0 and "rnn-L1-h16-s0: done earlier, skipped" in second.output
    bad = CliRunner().invoke(cli, [*args[:3], "rnn,transformer"])
    assert bad.exit_code == 2 and "transformer" in bad.output


@pytest.mark.parametrize("budget, message", [
    ("0steps", "Invalid value for '--budget': '0steps' is not a positive step count like 2000steps"),
    ("0", "Invalid value for '--budget': '0' is not a positive duration"),
    ("1e9", "Invalid value for '--budget': '1e9' is 31.7 years"),
    ("soon", "Invalid value for '--budget': 'soon' is not a duration (5m) or a step count (2000steps)"),
])
def test_a_bad_budget_is_named_as_typed(tiny_corpus, tmp_path, budget, message):
    """The refusal quotes ``--budget`` and the text given, never the TrainConfig field (``max_steps``) it fills."""
    result = CliRunner().invoke(cli, ["compare", str(tiny_corpus), "--budget", budget, "--out", str(tmp_path / "c")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "max_steps" not in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith(("error", "Error"))]) == 1
    assert not (tmp_path / "c").exists()


def test_budgets_in_scientific_notation_and_steps():
    from rnnlm.cli.compare_cmd import parse_budget

    assert parse_budget("1e2") == {"max_time_s": 100.0, "max_steps": None, "epochs": None}
    assert parse_budget("2000steps")["max_steps"] == 2000
