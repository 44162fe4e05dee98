"""``--size auto``: the lookup rule, the probe's time limit, and the choice through the API and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_TRAIN

import rnnlm
from rnnlm.training import autosize
from rnnlm.training.autosize import (Size, SweepTable, check_memory, choose, estimate_rates, measure_throughput, memory_parts,
                            read_curve, size_for_budget, text_script)
from rnnlm.cli import cli
from rnnlm.core.config import ModelConfig, TrainConfig
from rnnlm.data.splits import TBPTTBatches
from rnnlm.core.errors import InputError
from rnnlm.model.params import model_params
from rnnlm.data.tokenizers.char import CharTokenizer

SMALL, BIG = Size(8, 1), Size(16, 1)
TINY_GRID = (SMALL, BIG)
TINY_CLI = ["--bptt", "8", "--batch-size", "4", "--precision", "fp32", "--threads", "1"]
LIKE = {"vocab": 40, "script": "Latin"}  # a corpus like the synthetic table's


def synthetic_table(corpus_chars: tuple[float, float] = (1e6, 4e6)) -> SweepTable:
    """The small size wins below ~3M characters, the big one above, on both corpora (40 characters each)."""
    def runs(offset: float) -> list[dict]:
        grid = [{"mode": "grid", "size": str(SMALL), "chars_seen": 1e6, "best_val_bpc": 2.3 + offset},
                {"mode": "grid", "size": str(SMALL), "chars_seen": 1e7, "best_val_bpc": 2.1 + offset},
                {"mode": "grid", "size": str(BIG), "chars_seen": 1e6, "best_val_bpc": 2.5 + offset},
                {"mode": "grid", "size": str(BIG), "chars_seen": 1e7, "best_val_bpc": 1.9 + offset}]
        return grid + [{"mode": "auto", "size": str(BIG), "chars_seen": 1e6, "best_val_bpc": 0.5}]  # not a curve point
    return SweepTable("test machine", [{"name": "a", "train_chars": corpus_chars[0], "vocab": 40, "runs": runs(0.1)},
                                       {"name": "b", "train_chars": corpus_chars[1], "vocab": 40, "runs": runs(0.0)}])


@pytest.fixture
def tiny_grid(tmp_path, monkeypatch):
    """Two tiny grid sizes and the synthetic table in place of the real ones."""
    return use_table(synthetic_table(), tmp_path, monkeypatch)


def use_table(table: SweepTable, tmp_path, monkeypatch) -> SweepTable:
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps({"machine": table.machine, "corpora": table.corpora}))
    monkeypatch.setattr(autosize, "GRID", TINY_GRID)
    monkeypatch.setattr(autosize, "TABLE_PATH", path)
    return table


@pytest.mark.parametrize("text,size", [("512x1", Size(512, 1)), (" 768X2 ", Size(768, 2)), ("256×2", Size(256, 2))])
def test_size_parses(text, size):
    assert Size.parse(text) == size and str(size) == f"{size.hidden}x{size.layers}"


@pytest.mark.parametrize("text", ["512", "x1", "0x1", "512x0", "big", "512x1x2"])
def test_bad_size_is_an_input_error(text):
    with pytest.raises(InputError, match="HIDDENxLAYERS"):
        Size.parse(text)


def test_curve_is_linear_in_log_chars_never_better_than_measured():
    points = [(1e6, 2.0), (1e7, 1.8)]
    third = 0.2 * math.log10(3)  # bpc the segment's slope gives over a factor of 3
    assert read_curve(points, math.sqrt(1e6 * 1e7)) == pytest.approx(1.9)
    assert read_curve(points, 3e7) == pytest.approx(1.8)  # flat beyond the last point
    assert read_curve(points, 1e12) == pytest.approx(1.8)
    assert read_curve(points, 3e5) == pytest.approx(2.0 + third)  # worse below the first, ÷3 at most
    assert read_curve(points, 1e2) == pytest.approx(2.0 + third)
    assert read_curve([(1e6, 2.0)], 1e9) == 2.0 and read_curve([], 1e6) is None


def test_seeds_of_one_budget_are_averaged_and_auto_runs_are_not_curve_points():
    corpus = {"runs": [{"mode": "grid", "size": "8x1", "chars_seen": 1e6, "best_val_bpc": 2.0},
                       {"mode": "grid", "size": "8x1", "chars_seen": 1e6, "best_val_bpc": 2.1},
                       {"mode": "auto", "size": "8x1", "chars_seen": 2e6, "best_val_bpc": 1.0}]}
    assert SweepTable.curve(corpus, SMALL) == [(1e6, pytest.approx(2.05))]


def test_prediction_interpolates_between_corpora_by_log_size_and_clamps():
    table = synthetic_table()
    assert table.predict(SMALL, 1e6, 2e6) == pytest.approx(2.35)  # halfway in log size between 1M and 4M
    assert table.predict(SMALL, 1e6, 1e9) == pytest.approx(2.3)
    assert table.predict(SMALL, 1e6, 10) == pytest.approx(2.4)
    assert table.predict(Size(999, 3), 1e6, 1e6) is None


def test_choice_follows_the_characters_each_size_can_see():
    table = synthetic_table()
    short = choose(table, [SMALL, BIG], {SMALL: 1e6, BIG: 1e6}, 4_000_000, "1 min", **LIKE)
    long = choose(table, [SMALL, BIG], {SMALL: 1e7, BIG: 1e7}, 4_000_000, "1 h", **LIKE)
    assert (short.size, long.size) == (SMALL, BIG)
    assert long.reason.startswith("16x1: predicted 1.900 bpc") and "8x1 2.100" in long.reason
    # The big size is slower: at the same time it sees a tenth of the characters and loses.
    assert choose(table, [SMALL, BIG], {SMALL: 1e7, BIG: 1e6}, 4_000_000, "1 h", **LIKE).size == SMALL


def test_a_prediction_near_the_sweep_names_the_runs_it_comes_from():
    pick = choose(synthetic_table(), [SMALL, BIG], {SMALL: 1.2e7, BIG: 1.2e7}, 4_000_000, "1 h", **LIKE)
    assert pick.reason.startswith("16x1: predicted 1.900 bpc after 12.0M training characters (1 h; corpus 4.0M")
    assert "from the sweep's 16x1 runs near it, on English plays: 10.0M characters of b (4.0M) 1.900" in pick.reason
    assert "characters of a" not in pick.reason  # corpus a (1M) is more than a factor NEAR from 4M characters
    assert pick.predicted_bpc == pick.curve_bpc == {"16x1": 1.9, "8x1": 2.1}
    assert pick.near["16x1"] == [{"corpus": "b", "corpus_chars": 4e6, "chars": 1e7, "bpc": 1.9}]


@pytest.mark.parametrize("chars,train_chars,outside", [
    (2e3, 4e6, "16x1's nearest run saw 1.0M characters of b's 4.0M"),  # 30 steps of B=4 × T=16: far below the sweep
    (1e7, 5e4, "16x1's nearest run saw 10.0M characters of a's 1.0M"),  # a corpus far smaller than the sweep's
])
def test_a_budget_or_corpus_outside_the_sweep_gets_no_predicted_figure(chars, train_chars, outside):
    table = synthetic_table()
    pick = choose(table, [BIG, SMALL], {BIG: chars, SMALL: chars}, train_chars, "x", **LIKE)
    assert pick.size in (SMALL, BIG) and pick.predicted_bpc == {} and pick.near == {}
    assert f"{pick.size}: no bpc predicted for" in pick.reason
    assert outside.replace("16x1", str(pick.size)) in pick.reason
    assert "predicted 2." not in pick.reason and "predicted 1." not in pick.reason
    assert not any(f"{s} {bpc:.3f}" in pick.reason for s, bpc in pick.curve_bpc.items())  # runners: names only


@pytest.mark.parametrize("vocab,script,outside", [
    (877, "Hangul", "a vocabulary of 877 against the sweep's 40 characters; mostly Hangul letters against the sweep's "
                    "Latin (English plays)"),
    (40, "CJK", "mostly CJK letters"),
    (877, "Latin", "a vocabulary of 877"),
    (40, None, "no letters against the sweep's Latin"),
])
def test_a_foreign_vocabulary_or_script_gets_no_predicted_figure(vocab, script, outside):
    """A Korean corpus (877 characters) printed the English plays' figure as its prediction."""
    pick = choose(synthetic_table(), [SMALL, BIG], {SMALL: 1e7, BIG: 1e7}, 4_000_000, "1 h", vocab=vocab,
                  script=script)
    assert pick.size == BIG and pick.predicted_bpc == {} and outside in pick.reason
    assert pick.reason.startswith("16x1: no bpc predicted for 10.0M training characters")
    assert "nearest run" not in pick.reason  # the budget and corpus size are near: only these lie outside


def test_the_shipped_table_gives_no_figure_for_a_tiny_budget_or_a_korean_corpus():
    """The issue's cases on the real sweep: 30 steps of 4 × 16 on a 54k-character English text, and 2,000 steps on
    a 54k-character Korean one (877 characters); a step budget on tinyshakespeare near the sweep's keeps its figure."""
    table = SweepTable.load()
    tiny = choose(table, list(autosize.GRID), dict.fromkeys(autosize.GRID, 1920.0), 54_000, "30 steps",
                  vocab=65, script="Latin")
    korean = choose(table, list(autosize.GRID), dict.fromkeys(autosize.GRID, 8.2e6), 54_000, "2,000 steps",
                    vocab=877, script="Hangul")
    near = choose(table, list(autosize.GRID), dict.fromkeys(autosize.GRID, 4.9e6), 1_003_854, "1,200 steps",
                  vocab=65, script="Latin")
    assert tiny.predicted_bpc == korean.predicted_bpc == {} and "bpc predicted" not in near.reason
    assert "no bpc predicted" in tiny.reason and "no bpc predicted" in korean.reason
    assert near.reason.startswith(f"{near.size}: predicted ") and "characters of tinyshakespeare (1.0M)" in near.reason


def test_the_shipped_table_chooses_within_002_of_its_best_measured_size_at_every_budget():
    """At each budget the sweep measured, on each corpus, the rule fed the characters every size makes at that budget on
    the sweep's machine chooses a size measured there, within 0.02 bpc of the best one: the curves and the rule agree
    wherever there are points, the 60-minute ones included; past the last point each curve is flat."""
    table = SweepTable.load()
    checked = []
    for corpus in table.corpora:
        for minutes in sorted({r["minutes"] for r in corpus["runs"] if r["mode"] == "grid"}):
            runs = [r for r in corpus["runs"] if r["mode"] == "grid" and r["minutes"] == minutes]
            measured = {size: np.mean([r["best_val_bpc"] for r in runs if r["size"] == size])
                        for size in {r["size"] for r in runs}}
            seen = {r["size"]: r["chars_seen"] for r in runs}
            chars = {size: seen.get(str(size), minutes * 60 * autosize.TRAIN_SHARE * corpus["chars_per_s"][str(size)])
                     for size in autosize.GRID}
            pick = choose(table, list(autosize.GRID), chars, corpus["train_chars"], f"{minutes:g} min",
                          vocab=corpus["vocab"], script="Latin")
            assert str(pick.size) in measured, (corpus["name"], minutes, pick.reason)
            assert measured[str(pick.size)] - min(measured.values()) <= 0.02, (corpus["name"], minutes, pick.reason)
            checked.append((corpus["name"], minutes))
    assert len(checked) >= 8  # 2, 10, 30 and 60 minutes on both corpora at least


def test_the_corpus_script_is_read_from_its_letters():
    korean = "한국어 텍스트를 읽는다. 123 ok!\n" * 50
    english = "First Citizen: 한 ... Before we proceed 42.\n" * 50
    digits = "12 34, 56.\n" * 9
    for text, script in ((korean, "Hangul"), (english, "Latin"), (digits, None), ("漢字です" * 9, "CJK")):
        tokenizer = CharTokenizer.from_text(text)
        assert text_script(tokenizer.decode, tokenizer.encode(text)) == script


def test_a_near_tie_goes_to_the_cheaper_size():
    table = SweepTable("m", [{"name": "a", "train_chars": 1e6, "vocab": 40, "runs": [
        {"mode": "grid", "size": str(SMALL), "chars_seen": 1e6, "best_val_bpc": 2.003},
        {"mode": "grid", "size": str(BIG), "chars_seen": 1e6, "best_val_bpc": 2.0}]}])
    pick = choose(table, [SMALL, BIG], {SMALL: 1e6, BIG: 1e6}, 1e6, "x", **LIKE)
    assert pick.size == SMALL and "2.003 bpc, within 0.005 of 16x1's: the cheaper" in pick.reason


def test_no_measurement_for_any_candidate_is_an_input_error():
    with pytest.raises(InputError, match="--size HxL"):
        choose(synthetic_table(), [Size(999, 1)], {Size(999, 1): 1e6}, 1e6, "x", **LIKE)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_probe_stays_inside_its_share_cheapest_first():
    clock = FakeClock()
    sizes = [Size(h, 1) for h in (1, 2, 4, 8, 16)]
    cost = lambda s: s.hidden  # noqa: E731 - seconds per step are proportional to it
    made = []

    def make_step(size):
        made.append(size)

        def step():
            clock.now += 0.1 * size.hidden
            return 1000
        return step

    rates = measure_throughput(sizes[::-1], make_step, cost, limit_s=5.0, clock=clock, min_s=0.25)
    # 8 ends at 3.4 s; 16 would need a warm-up and a timed step of ~1.6 s each (×1.5 margin) and pass 5 s.
    assert clock.now == pytest.approx(3.4) and made == list(rates) == sizes[:4]
    assert rates[Size(1, 1)] == pytest.approx(1000 / 0.1) and rates[Size(8, 1)] == pytest.approx(1000 / 0.8)


def test_unprobed_sizes_take_the_sweeps_speed_ratio_else_the_cost_ratio():
    table = SweepTable("m", [{"name": "a", "train_chars": 1e6, "runs": [],
                              "chars_per_s": {"8x1": 100.0, "16x1": 80.0}},
                             {"name": "b", "train_chars": 4e6, "runs": [],
                              "chars_per_s": {"8x1": 100.0, "16x1": 60.0}}])
    rates = {SMALL: 1000.0}
    assert not estimate_rates(rates, SMALL, [SMALL, BIG, Size(32, 1)], table, cost=lambda s: s.hidden)
    assert rates == {SMALL: 1000.0, BIG: pytest.approx(700.0), Size(32, 1): pytest.approx(250.0)}


def _speed_table() -> SweepTable:
    speeds = {"8x1": 100.0, "16x1": 50.0, "32x1": 20.0}
    return SweepTable("m", [{"name": n, "train_chars": c, "runs": [], "chars_per_s": speeds}
                            for n, c in (("a", 1e6), ("b", 4e6))])


def test_probed_rates_like_the_sweeps_take_one_machine_factor():
    """10% fast and 10% slow readings of sizes the sweep ran 2:1 become one factor (≈ 9.95×) × its ratios."""
    rates = {SMALL: 1100.0, BIG: 450.0}
    assert estimate_rates(rates, BIG, [SMALL, BIG, Size(32, 1)], _speed_table(), cost=lambda s: s.hidden)
    factor = math.sqrt(11 * 9)
    assert rates == {SMALL: pytest.approx(100 * factor), BIG: pytest.approx(50 * factor),
                     Size(32, 1): pytest.approx(20 * factor)}


def test_probed_rates_unlike_the_sweeps_stand_as_measured():
    """A GPU-like probe (the big size as fast as the small, where the sweep ran it at half) keeps its readings."""
    rates = {SMALL: 1000.0, BIG: 1000.0}
    assert not estimate_rates(rates, BIG, [SMALL, BIG, Size(32, 1)], _speed_table(), cost=lambda s: s.hidden)
    assert rates == {SMALL: 1000.0, BIG: 1000.0, Size(32, 1): pytest.approx(1000 * 20 / 50)}


def _batches() -> TBPTTBatches:
    return TBPTTBatches((np.arange(5000) % 40).astype(np.uint16), 4, 8)


def test_a_step_budget_chooses_from_the_token_count_without_probing(tiny_grid, monkeypatch):
    monkeypatch.setattr(autosize, "probe", lambda *a, **k: pytest.fail("a step budget must not probe"))
    model = ModelConfig(vocab_size=40, embed_size=8)
    few = TrainConfig(max_time_s=None, max_steps=100, batch_size=4, bptt=8)  # 3,200 chars: the small size
    many = few.replace(max_steps=400_000)  # 12.8M chars: the big one
    picks = [size_for_budget(model, cfg, _batches(), torch.device("cpu"), None, None, 1, FakeClock())
             for cfg in (few, many)]
    assert [p.size for p in picks] == [SMALL, BIG] and picks[0].probed == [] and picks[0].probe_s == 0
    assert picks[1].chars == {"8x1": 12_800_000, "16x1": 12_800_000}


def test_sizes_that_do_not_fit_in_memory_are_not_candidates(tiny_grid, monkeypatch):
    monkeypatch.setattr(autosize, "available_memory", lambda device: 2 * autosize.memory_bytes(
        SMALL, "lstm", 40, 8, 4, 8))
    cfg = TrainConfig(max_time_s=None, max_steps=400_000, batch_size=4, bptt=8)
    pick = size_for_budget(ModelConfig(vocab_size=40, embed_size=8), cfg, _batches(),
                           torch.device("cpu"), None, None, 1, FakeClock())
    assert pick.size == SMALL and list(pick.curve_bpc) == ["8x1"]


def test_auto_run_probes_inside_the_time_budget_and_stores_its_choice(tiny_grid, tiny_corpus, tmp_path):
    config = TrainConfig(**{**TINY_TRAIN, "max_time_s": 600.0, "max_steps": 6})
    summary = rnnlm.train(tiny_corpus, model={"embed_size": 8, "dropout": 0.0}, config=config, out=tmp_path / "run",
                          size="auto", threads=1)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    choice = stored["size"]
    assert choice["mode"] == "auto" and choice["size"] == summary["size"] and choice["probed"][0] == "8x1"
    assert 0 < choice["probe_s"] <= 0.03 * 600 and summary["elapsed_s"] >= choice["probe_s"]
    assert stored["config"]["model"]["hidden_size"] == Size.parse(choice["size"]).hidden
    assert set(choice["curve_bpc"]) == {"8x1", "16x1"} and choice["table_machine"] == "test machine"
    resumed = rnnlm.train(tiny_corpus, out=tmp_path / "run", resume=True, overrides={"max_steps": 8}, threads=1)
    again = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resumed["size"] == choice["size"] and again["size"] == choice  # a resumed run keeps its size


def test_an_auto_run_starts_from_the_weights_of_the_same_fixed_size(tiny_grid, tiny_corpus, tmp_path):
    """The probe's throwaway models draw random numbers; the real model is seeded after it."""
    config = TrainConfig(**{**TINY_TRAIN, "max_time_s": 30.0, "max_steps": 3})
    auto = rnnlm.train(tiny_corpus, model={"embed_size": 8}, config=config, out=tmp_path / "auto", size="auto",
                       threads=1)
    fixed = rnnlm.train(tiny_corpus, model={"embed_size": 8}, config=config, out=tmp_path / "fixed",
                        size=auto["size"], threads=1)
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["size"]["probed"]  # it did probe
    assert auto["val_bpc"] == fixed["val_bpc"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_dry_run_prints_the_choice_and_writes_nothing(tiny_grid, tiny_corpus, tmp_path):
    """The tiny corpus (2k characters) is far smaller than the table's (1M, 4M): a choice, and no figure."""
    result = run("train", tiny_corpus, "--max-steps", 400_000, "--out", tmp_path / "run", "--dry-run", *TINY_CLI)
    assert result.exit_code == 0, result.output
    # 12.8M characters lie past both curves' last point (10M): each is read flat there, on the smaller corpus
    assert "size 16x1 (auto): 16x1: no bpc predicted for 12.8M training characters" in result.output
    assert "16x1's nearest run saw 10.0M characters of a's 1.0M" in result.output and "next: 8x1\n" in result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()
            if line.strip().startswith(("8x1", "16x1"))}
    assert rows["16x1"][1:4] == ["12.8M", "-", "none;"] and "nearest 10.0M chars of a (1.0M): 2.000" in result.stdout
    assert not (tmp_path / "run").exists()


def test_dry_run_shows_the_runs_measured_near_the_budget_and_corpus(tmp_path, tiny_corpus, monkeypatch):
    """With a table measured on corpora the tiny one's size, the figures stand and name their runs."""
    use_table(synthetic_table(corpus_chars=(1e3, 4e3)), tmp_path, monkeypatch)
    result = run("train", tiny_corpus, "--max-steps", 400_000, "--out", tmp_path / "run", "--dry-run", *TINY_CLI)
    assert result.exit_code == 0, result.output
    assert "size 16x1 (auto): 16x1: predicted 1." in result.output
    assert "from the sweep's 16x1 runs near it, on English plays: 10.0M characters of a (1k)" in result.output
    row = next(line.split() for line in result.output.splitlines() if line.strip().startswith("8x1"))
    assert row[1] == "12.8M" and float(row[2]) > 2 and "10.0M chars of a (1k):" in " ".join(row[3:])


def test_dry_run_on_a_korean_corpus_gives_no_figure(tmp_path, monkeypatch):
    """Same table, same budget, a corpus of the same size and vocabulary in Hangul: the script is read from the text."""
    use_table(synthetic_table(corpus_chars=(1e3, 4e3)), tmp_path, monkeypatch)
    corpus = tmp_path / "ko.txt"
    corpus.write_text("한국어 텍스트를 읽고 쓴다. 바다와 하늘, 나무와 바람!\n" * 70, encoding="utf-8")
    result = run("train", corpus, "--max-steps", 400_000, "--out", tmp_path / "run", "--dry-run", *TINY_CLI)
    assert result.exit_code == 0, result.output
    assert "size 16x1 (auto): 16x1: no bpc predicted for 12.8M training characters" in result.output
    assert "(mostly Hangul letters against the sweep's Latin (English plays)); chosen by its curves" in result.output
    assert "predicted 1." not in result.output and "predicted 2." not in result.output


def test_fixed_size_flag_reproduces_a_run(tiny_corpus, tmp_path):
    result = run("train", tiny_corpus, "--max-steps", 3, "--size", "24x2", "--out", tmp_path / "run", *TINY_CLI)
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["config"]["model"]["hidden_size"], stored["config"]["model"]["num_layers"]) == (24, 2)
    assert stored["size"]["mode"] == "fixed" and stored["size"]["size"] == "24x2"


@pytest.mark.parametrize("flags,message", [(["--size", "24x1", "--hidden", "16"], "not both"),
                                           (["--size", "huge"], "HIDDENxLAYERS")])
def test_bad_size_flags_exit_2_with_one_line(tiny_corpus, tmp_path, flags, message):
    result = run("train", tiny_corpus, "--max-steps", 3, "--out", tmp_path / "run", *flags, *TINY_CLI)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "latest.safetensors").exists()


def test_the_shipped_table_covers_the_grid_on_two_corpora():
    table = SweepTable.load()
    assert len(table.corpora) >= 2 and table.machine
    for corpus in table.corpora:
        measured = {run["size"] for run in corpus["runs"] if run["mode"] == "grid"}
        assert {str(s) for s in autosize.GRID} <= measured, corpus["name"]


def test_ranks_agree_on_rank_0s_choice(tmp_path):
    """Rank 1's probe says the big size is 100× slower, so alone it would choose the small one."""
    worker = Path(__file__).with_name("autosize_ddp_worker.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = subprocess.run([*torchrun, str(worker), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert ddp.returncode == 0, ddp.stderr[-6000:]
    picks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert picks[0]["alone"] == "16x1" and picks[1]["alone"] == "8x1"
    assert picks[0]["agreed"] == picks[1]["agreed"] == "16x1"


def test_the_memory_estimate_counts_weights_optimizer_state_and_a_windows_activations():
    weights, activations = memory_parts(Size(64, 2), "lstm", 65, 16, 4, 8)
    assert weights == autosize.BYTES_PER_PARAM * model_params("lstm", 2, 64, 65, 16)
    per_position = autosize.ACTIVATION_BYTES * 2 * 64 * (4 + 2) + autosize.EMBED_BYTES * 16
    assert activations == 4 * 8 * per_position + autosize.LOGIT_BYTES * 4 * 8 * 65
    assert memory_parts(Size(64, 2), "lstm", 65, 16, 8, 8) == (weights, 2 * activations)  # twice the batch
    # A 6,000-character vocabulary's logits are held 5 positions at a time (the trainer's STEP_LOGITS_BUDGET).
    wide = memory_parts(Size(64, 1), "lstm", 6000, 16, 64, 64)[1] - memory_parts(Size(64, 1), "lstm", 65, 16, 64, 64)[1]
    assert wide == autosize.LOGIT_BYTES * (64 * 5 * 6000 - 64 * 64 * 65)


def test_a_size_beyond_the_machines_memory_is_refused_with_its_estimate(monkeypatch):
    monkeypatch.setattr(autosize, "machine_memory", lambda device: 10**9)
    cpu = torch.device("cpu")
    check_memory(Size(512, 1), "lstm", 65, 64, 64, 64, cpu)  # ~0.1 GB fits
    with pytest.raises(InputError, match=r"^a 8192x4 lstm needs about [\d.]+ GB to train \([\d.]+ GB for its weights, "
                                         r"gradients and optimizer state, [\d.]+ GB for a batch of 64 × bptt 64\) but "
                                         r"this machine has 1.0 GB; lower --size \(or --hidden, --layers\)$"):
        check_memory(Size(8192, 4), "lstm", 65, 64, 64, 64, cpu)
    with pytest.raises(InputError, match=r"for a batch of 4096 × bptt 4096\) .* lower --batch-size or --bptt"):
        check_memory(Size(64, 1), "lstm", 65, 64, 4096, 4096, cpu)


def test_the_machines_memory_is_its_ram_on_cpu():
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < autosize.machine_memory(torch.device("cpu")) <= ram


@pytest.mark.parametrize("flags", [["--size", "99999x9"], ["--hidden", "99999", "--layers", "9"],
                                   ["--size", "99999x9", "--dry-run"]])
def test_train_refuses_a_size_that_cannot_fit_before_allocating_it(tiny_corpus, tmp_path, monkeypatch, flags):
    """``--size 99999x9`` exited 1 with torch's "can't allocate memory" RuntimeError; ~19 TB fits no machine."""
    monkeypatch.setattr("rnnlm.training.run.RNNLM", lambda *args: pytest.fail("the model was built"))
    result = run("train", tiny_corpus, "--max-steps", 3, "--out", tmp_path / "run", *flags, *TINY_CLI)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: a 99999x9 lstm needs about ") and " TB to train " in lines[0]
    assert lines[0].endswith("; lower --size (or --hidden, --layers)")
    assert not (tmp_path / "run").exists()
