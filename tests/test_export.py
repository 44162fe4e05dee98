"""``rnnlm export --format web``: the page's forward pass and sampler against torch, in headless Chromium.

Three small character models (the shared 2×16 LSTM, a 1×18 GRU and a 3×13
SimpleRNN whose sizes are not multiples of the kernel's 4-wide blocks) are
exported and driven through the page's ``rnnlm`` object.  Where greedy or
seeded choices are compared, float paths may split only at a near-tie: the
page reports each choice's margin, and the texts must agree up to the first
margin below the tolerance (none occurs for these models, and the comparison
must cover most of the text, so it cannot pass vacuously).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN
from pages import open_page

import rnnlm
from rnnlm.cli import cli
from rnnlm.config import ModelConfig
from rnnlm.evaluate import evaluate_ids
from rnnlm.export import build_page, export_web, int8_rows
from rnnlm.model import RNNLM
from rnnlm.tokenizer import CharTokenizer

CELLS = ("lstm", "gru", "rnn")
PROMPT = "First Citizen:\n"
# Not in the training text, written from its characters only.
HELD_OUT = ("All:\nFamish? Before we proceed, hear me speak.\n\nFirst Citizen:\nYou are resolved rather to speak "
            "than to die.\n\nAll:\nResolved, we die rather than famish.\n\n") * 4
# Page and torch differ by ~1e-6 in logits and ≤ 2e-7 in probabilities (measured on these models), so a
# choice may differ only where its margin is below these: the top-2 logit gap for greedy, and for a draw
# the distance of the uniform number from the nearest CDF step (relative to the total).
GREEDY_TIE = 1e-4
DRAW_TIE = 1e-6


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory) -> dict:
    """Run directories per cell: the shared LSTM, and a GRU and a SimpleRNN trained here (fp32, 1 thread, <1 s each)."""
    from rnnlm.api import train
    from rnnlm.config import TrainConfig

    root = tmp_path_factory.mktemp("export_runs")
    corpus = root / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 300})
    shapes = {"gru": dict(embed_size=10, hidden_size=18, num_layers=1), "rnn": dict(embed_size=7, hidden_size=13, num_layers=3)}
    out = {"lstm": tiny_run}
    for cell, shape in shapes.items():
        torch.set_num_threads(1)
        train(corpus, model=ModelConfig(cell=cell, **{**TINY_MODEL, **shape}), config=config, out=root / cell, threads=1)
        out[cell] = root / cell
    return out


@pytest.fixture(scope="module")
def pages(runs, tmp_path_factory) -> dict:
    """(cell, "fp32" | "int8") → exported page."""
    root = tmp_path_factory.mktemp("export_pages")
    return {(cell, kind): export_web(rnnlm.load(run), root / f"{cell}-{kind}.html", fp32=kind == "fp32")["out"]
            for cell, run in runs.items() for kind in ("fp32", "int8")}


def torch_probs(lm, ids: np.ndarray) -> np.ndarray:
    """Next-character probabilities after each id, from a fresh state, in fp32 (then float64)."""
    with torch.inference_mode():
        logits, _ = lm.module(torch.from_numpy(ids.astype(np.int64))[None], lm.module.init_state(1))  # (1, T, V)
    return torch.softmax(logits[0].double(), dim=-1).numpy()


def agreed_prefix(margins: list[float], tie: float) -> int:
    """Characters before the first near-tie: where two float paths must make the same choices."""
    return next((i for i, m in enumerate(margins) if m < tie), len(margins))


def open_clean(browser, path):
    page = open_page(browser, path)
    assert page.js("return rnnlm.backend") == "wasm-simd"
    return page


@pytest.mark.parametrize("cell", CELLS)
def test_fp32_page_probabilities_match_torch_over_500_steps(browser, runs, pages, cell):
    lm = rnnlm.load(runs[cell])
    ids = lm.tokenizer.encode(TINY_TEXT[:500])  # includes Korean, an emoji and accents
    expected = torch_probs(lm, ids)
    page = open_clean(browser, pages[cell, "fp32"])
    for backend in ("wasm-simd", "js"):
        assert page.js("return rnnlm.setBackend(arguments[0])", backend) == backend
        got = np.array(page.js("return rnnlm.probabilities(arguments[0])", ids.tolist()))
        assert got.shape == expected.shape == (500, lm.config.vocab_size)
        assert np.abs(got - expected).max() < 1e-4, backend
    assert page.console_errors() == [] and page.network_requests() == []


@pytest.mark.parametrize("cell", CELLS)
def test_greedy_page_text_equals_generate_temperature_0(browser, runs, pages, cell):
    result = CliRunner().invoke(cli, ["generate", str(runs[cell]), "--temperature", "0", "--length", "300",
                                      "--prompt", PROMPT, "--no-echo"])
    assert result.exit_code == 0, result.output
    python = result.stdout.removesuffix("\n")
    page = open_clean(browser, pages[cell, "fp32"])
    got = page.js("return rnnlm.generate({prompt: arguments[0], length: 300, temperature: 0})", PROMPT)
    assert len(got["text"]) == len(python) == 300
    agreed = agreed_prefix(got["margins"], GREEDY_TIE)
    assert agreed >= 250 and got["text"][:agreed] == python[:agreed]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("settings", [dict(temperature=0.8), dict(temperature=1.2, top_k=8, top_p=0.9)])
def test_seeded_sampling_repeats_in_the_page_and_equals_python(browser, runs, pages, cell, settings):
    page = open_clean(browser, pages[cell, "fp32"])
    options = dict(prompt=PROMPT, length=300, temperature=settings["temperature"], topK=settings.get("top_k", 0),
                   topP=settings.get("top_p", 1.0))
    sample = lambda seed: page.js("return rnnlm.generate(arguments[0])", {**options, "seed": seed})  # noqa: E731
    first, again, other = sample(7), sample(7), sample(8)
    assert first["text"] == again["text"] and first["text"] != other["text"]
    lm = rnnlm.load(runs[cell])
    python = lm.generate(PROMPT, length=300, seed=7, echo=False, **settings)
    agreed = agreed_prefix(first["margins"], DRAW_TIE)
    assert agreed >= 250 and first["text"][:agreed] == python[:agreed]
    stop = python[150:153]  # a stop string cuts both right after its first occurrence
    cut = python[: python.index(stop) + 3]
    assert page.js("return rnnlm.generate(arguments[0]).text", {**options, "seed": 7, "stop": stop}) == cut
    assert lm.generate(PROMPT, length=300, seed=7, echo=False, stop=stop, **settings) == cut


@pytest.mark.parametrize("cell", CELLS)
def test_int8_page_bpc_within_0_01_of_the_fp32_model(browser, runs, pages, cell):
    lm = rnnlm.load(runs[cell])
    fp32 = evaluate_ids(lm.module, lm.tokenizer.encode(HELD_OUT), streams=1).bpc  # one stream, as the page scores
    bpc = {kind: open_clean(browser, pages[cell, kind]).js("return rnnlm.bpc(arguments[0])", HELD_OUT)
           for kind in ("fp32", "int8")}
    assert abs(bpc["fp32"] - fp32) < 1e-4
    assert abs(bpc["int8"] - fp32) < 0.01


def test_page_writes_the_prompt_continuation_offline(browser, runs, pages):
    from selenium.webdriver.common.by import By  # after the browser fixture, which skips where selenium is missing
    from selenium.webdriver.support.ui import WebDriverWait

    page = open_page(browser, pages["lstm", "int8"])
    find = lambda css: page.driver.find_element(By.CSS_SELECTOR, css)  # noqa: E731
    facts = find("#facts").text
    assert "LSTM, 2 × 16 units" in facts and "tiny.txt" in facts and "int8 weights" in facts
    val_bpc = rnnlm.load(runs["lstm"]).meta["metrics"]["val_bpc"]
    assert f"validation {val_bpc:.3f} bpc" in facts
    find("#prompt").send_keys(PROMPT)
    for field, value in (("length", "200"), ("seed", "3")):
        find(f"#{field}").clear()
        find(f"#{field}").send_keys(value)
    find("#generate").click()
    WebDriverWait(page.driver, 10, poll_frequency=0.05).until(lambda _: find("#generate").is_enabled())
    assert find("#output .prompt").text == PROMPT.strip()
    written = page.js("return document.querySelector('#output .generated').textContent")
    assert written == page.js("return rnnlm.generate(arguments[0]).text", {"prompt": PROMPT, "length": 200, "seed": 3})
    assert "200 characters" in find("#status").text and "seed 3" in find("#status").text
    page.screenshot("export-page")
    find("#length").clear()
    find("#length").send_keys("10000000")
    find("#generate").click()
    find("#halt").click()
    assert "stopped" in find("#status").text and find("#generate").is_enabled()
    assert 0 < len(page.js("return document.querySelector('#output .generated').textContent")) < 10_000_000
    find("#prompt").send_keys("Wxq")
    find("#generate").click()
    assert "not in the vocabulary" in find("#status").text and "'W' (U+0057)" in find("#status").text
    assert page.console_errors() == [] and page.network_requests() == []


def test_markup_in_the_vocabulary_cannot_break_the_page(browser, tmp_path):
    tokenizer = CharTokenizer("".join(sorted(set("\n &/<>\\\"'`ab</script>$"))))
    module = RNNLM(ModelConfig(cell="gru", vocab_size=tokenizer.vocab_size, embed_size=4, hidden_size=4, dropout=0.0))
    facts = {"corpus": "<b>x</b>.txt", "val_bpc": None, "checkpoint": "run/best.safetensors", "step": 0}
    path = tmp_path / "markup.html"
    path.write_text(build_page(module, tokenizer, facts), encoding="utf-8")
    page = open_clean(browser, path)
    assert page.js("return rnnlm.encode('</script>&').ids") == tokenizer.encode("</script>&").tolist()
    assert "<b>x</b>.txt" in page.js("return document.getElementById('facts').textContent")
    assert page.console_errors() == []


def test_int8_page_of_a_1x512_lstm_is_under_2_mb():
    tokenizer = CharTokenizer("".join(chr(c) for c in range(32, 97)))  # 65 characters, like tinyshakespeare
    module = RNNLM(ModelConfig(cell="lstm", vocab_size=65, embed_size=64, hidden_size=512, dropout=0.0))
    facts = {"corpus": "x.txt", "val_bpc": 1.9, "checkpoint": "run/best.safetensors", "step": 1}
    params = sum(p.numel() for p in module.parameters())
    int8 = len(build_page(module, tokenizer, facts).encode())
    fp32 = len(build_page(module, tokenizer, facts, fp32=True).encode())
    assert int8 < 2_000_000 and int8 / params < 1.4
    assert 5.3 < fp32 / params < 5.5


def test_int8_rows_error_is_at_most_half_a_step_per_row():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(6, 33)).astype(np.float32) * np.array([1e-3, 0.1, 1, 10, 100, 0])[:, None]
    q, scale = int8_rows(weight)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.all(np.abs(q * scale[:, None] - weight) <= scale[:, None] / 2 * (1 + 1e-6))


def test_cli_export_json_and_the_newest_run_by_default(runs, tmp_path):
    shutil.copytree(runs["gru"], tmp_path / "checkpoints" / "gru-run")
    result = CliRunner().invoke(cli, ["export", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "using checkpoints/gru-run/best.safetensors" in result.stderr
    assert summary["out"] == "gru-run.html" and (tmp_path / "gru-run.html").stat().st_size == summary["bytes"]
    assert (summary["cell"], summary["num_layers"], summary["weights"]) == ("gru", 1, "int8")
    assert summary["parameters"] == sum(p.numel() for p in rnnlm.load(runs["gru"]).module.parameters())
    result = CliRunner().invoke(cli, ["export", str(runs["gru"]), "--fp32", "--out", "exact.html"])
    assert result.exit_code == 0 and result.stdout.startswith("wrote exact.html:") and "fp32" in result.stdout


@pytest.mark.parametrize("case", ["subword", "out is a directory", "missing checkpoint"])
def test_cli_export_bad_input_is_one_line_exit_2(runs, tmp_path, tiny_corpus, case):
    args = ["export", str(runs["lstm"])]
    expected = "is a directory"
    if case == "subword":
        from rnnlm.api import train
        from rnnlm.config import TrainConfig

        config = TrainConfig(**{**TINY_TRAIN, "max_steps": 2, "tokenizer": "bpe", "vocab_size": 300})
        train(tiny_corpus, model=ModelConfig(cell="gru", **TINY_MODEL), config=config, out=tmp_path / "bpe", threads=1)
        args, expected = ["export", str(tmp_path / "bpe")], "needs a character model; this checkpoint uses a bpe"
    elif case == "out is a directory":
        args += ["--out", str(tmp_path)]
    else:
        args, expected = ["export", str(tmp_path / "nowhere")], "nowhere"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and expected in result.stderr
