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
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN
from pages import HOSTILE_NAME, HOSTILE_TEXT, assert_no_script_ran, hostile_run, open_page

import rnnlm
from rnnlm.cli import cli
from rnnlm.core.config import ModelConfig
from rnnlm.evaluation.metrics import evaluate_ids
from rnnlm.core.pages import fill_template
from rnnlm.generation.export import build_page, export_web, int8_rows
from rnnlm.core.fileio import PAGE, PAGE_MARK
from rnnlm.model.network import RNNLM
from rnnlm.data.tokenizers.char import CharTokenizer

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
    from rnnlm.training.run import train
    from rnnlm.core.config import TrainConfig

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


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A run directory named HOSTILE_NAME whose corpus, ``HOSTILE_NAME.txt``, holds HOSTILE_TEXT (tests/pages.py)."""
    return hostile_run(tmp_path_factory.mktemp("hostile"))


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


def test_markup_in_names_vocabulary_and_prompt_stays_text(browser, hostile, tmp_path):
    """Run directory and corpus named HOSTILE_NAME, vocabulary and prompt holding HOSTILE_TEXT: no script runs, all reads back.

    Guards every escape a value goes through: the title (an entity would be decoded there), the heading (HTML
    text), the metadata (JSON in a script element: the corpus name's ``<!--<script>`` would hide the element's
    end) and the corpus name in the facts line (text, never markup).
    """
    from selenium.webdriver.support.ui import WebDriverWait  # after the browser fixture, which skips without selenium

    lm = rnnlm.load(hostile)
    page = open_clean(browser, export_web(lm, tmp_path / "hostile.html")["out"])
    heading = f"{HOSTILE_NAME}.txt · LSTM 2×16"
    assert_no_script_ran(page, f"{heading} — rnnlm")
    assert page.js("return document.querySelector('h1').textContent") == heading
    assert page.js("return document.querySelectorAll('#facts b')[2].textContent") == f"{HOSTILE_NAME}.txt"
    assert page.js("return document.getElementById('facts').title").startswith(f"{HOSTILE_NAME}/best.safetensors, step ")
    meta = page.js("return JSON.parse(document.getElementById('rnnlm-meta').textContent)")
    assert meta["chars"] == [lm.tokenizer.decode([i]) for i in range(lm.config.vocab_size)]
    assert (meta["corpus"], meta["checkpoint"]) == (f"{HOSTILE_NAME}.txt", f"{HOSTILE_NAME}/best.safetensors")
    assert page.js("return rnnlm.encode(arguments[0]).ids", HOSTILE_TEXT) == lm.tokenizer.encode(HOSTILE_TEXT).tolist()
    page.js("document.getElementById('prompt').value = arguments[0];"
            "document.getElementById('length').value = '60'; document.getElementById('seed').value = '5';"
            "document.getElementById('generate').click()", HOSTILE_TEXT)
    WebDriverWait(page.driver, 10, poll_frequency=0.05).until(lambda _: page.js("return !document.getElementById('generate').disabled"))
    assert page.js("return document.querySelector('#output .prompt').textContent") == HOSTILE_TEXT
    written = page.js("return document.querySelector('#output .generated').textContent")
    assert written == page.js("return rnnlm.generate(arguments[0]).text", {"prompt": HOSTILE_TEXT, "length": 60, "seed": 5})
    assert_no_script_ran(page, f"{heading} — rnnlm")


@pytest.mark.parametrize("name", ["{{UI}}", "{{WEIGHTS}}"])
def test_a_run_named_like_a_template_slot_exports_a_working_page(browser, hostile, tmp_path, name):
    """Values are data, never template: slots filled one by one once put ui.js into a ``{{UI}}`` run's metadata
    (a page whose script failed) and the weights twice into a ``{{WEIGHTS}}`` one's; the corpus name holds
    ``{{ENGINE}}``, which once put engine.js into the title."""
    run = shutil.copytree(hostile, tmp_path / name)
    out = Path(export_web(rnnlm.load(run), tmp_path / "slot.html")["out"])
    text = out.read_text(encoding="utf-8")
    weights = re.search(r'id="rnnlm-weights">([^<]*)</script>', text).group(1)
    assert len(weights) > 10_000 and text.count(weights) == 1
    page = open_clean(browser, out)
    assert_no_script_ran(page, f"{HOSTILE_NAME}.txt · LSTM 2×16 — rnnlm")
    assert page.js("return JSON.parse(document.getElementById('rnnlm-meta').textContent).checkpoint") == f"{name}/best.safetensors"


def test_fill_template_fills_each_slot_in_one_pass_and_refuses_a_mismatch():
    assert fill_template("<{{A}}|{{B}}>", {"A": "{{B}}", "B": "{{A}}"}) == "<{{B}}|{{A}}>"
    with pytest.raises(ValueError, match="'C'"):
        fill_template("{{A}}{{C}}", {"A": "a"})  # a slot nobody fills would reach the page
    with pytest.raises(ValueError, match="'B'"):
        fill_template("{{A}}", {"A": "a", "B": "b"})  # a value with no slot is lost


def test_the_written_page_carries_rnnlm_s_mark_in_its_head(hostile, tmp_path):
    """The mark lets a later write recognise a page rnnlm wrote (docs/developer/rules.md, "Files a user names")."""
    out = Path(export_web(rnnlm.load(hostile), tmp_path / "page.html")["out"])
    text = out.read_text(encoding="utf-8")
    assert PAGE_MARK in text[: text.index("</head>")] and PAGE.is_ours(out)


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
    # The weights apart from the page's fixed part (code, kernel, metadata), which does not grow with the model.
    assert summary["weights_bytes"] + summary["fixed_bytes"] == summary["bytes"]
    assert summary["bytes_per_parameter"] == round(summary["bytes"] / summary["parameters"], 3)
    assert summary["weights_bytes_per_parameter"] == round(summary["weights_bytes"] / summary["parameters"], 3)
    result = CliRunner().invoke(cli, ["export", str(runs["gru"]), "--fp32", "--json", "--out", "exact.json.html"])
    exact = json.loads(result.stdout)
    assert 5.33 < exact["weights_bytes_per_parameter"] < 5.5 and abs(exact["fixed_bytes"] - summary["fixed_bytes"]) < 500
    result = CliRunner().invoke(cli, ["export", str(runs["gru"]), "--fp32", "--out", "exact.html"])
    assert result.exit_code == 0 and result.stdout.startswith("wrote exact.html:")
    assert (f"{exact['parameters']:,} parameters × {exact['weights_bytes_per_parameter']:.2f} bytes (fp32 weights) + "
            f"{exact['fixed_bytes'] / 1e3:.1f} kB of page code and metadata" in result.stdout)


@pytest.mark.parametrize("case", ["subword", "out is a directory", "missing checkpoint"])
def test_cli_export_bad_input_is_one_line_exit_2(runs, tmp_path, tiny_corpus, case):
    args = ["export", str(runs["lstm"])]
    expected = "is a directory"
    if case == "subword":
        from rnnlm.training.run import train
        from rnnlm.core.config import TrainConfig

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
