"""``rnnlm export --format onnx``: ONNX Runtime against torch, for every cell at depths 1 and 2.

Six small character models (SimpleRNN, LSTM and GRU, one and two layers, of
sizes that differ per cell) are trained briefly and exported.  ONNX Runtime
steps each one character at a time with the state fed back, and its
probabilities must stay within 1e-5 of torch's over 500 steps; greedy text
must equal ``rnnlm generate --temperature 0`` up to the first near-tie, the
web export's rule (tests/test_export.py): the choices are compared up to the
first top-2 logit gap below ``GREEDY_TIE`` and must cover most of the text, so
the check cannot pass vacuously.  The generation loop that docs/export.md
shows is run from the page itself, so it cannot rot.

Skips with the reason when onnx or onnxruntime is missing; the test extra,
which CI installs, holds both.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN

import rnnlm
from rnnlm.cli import cli
from rnnlm.core.config import ModelConfig
from rnnlm.core.errors import InputError
from rnnlm.core.fileio import ONNX, ONNX_JSON
from rnnlm.generation.onnx_export import INSTALL, METADATA_KEY, export_onnx, json_path, onnx_meta
from rnnlm.model.cells import REGISTRY
from rnnlm.model.network import RNNLM

ROOT = Path(__file__).resolve().parents[1]
MISSING = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
needs_onnx = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed "
                                                       f"(the test extra has them: pip install -e '.[test]')")

CELLS = ("rnn", "lstm", "gru")
DEPTHS = (1, 2)
MODELS = [(cell, depth) for cell in CELLS for depth in DEPTHS]
SHAPES = {"rnn": dict(embed_size=7, hidden_size=13), "lstm": dict(embed_size=16, hidden_size=16),
          "gru": dict(embed_size=10, hidden_size=18)}
TEXT = TINY_TEXT + "ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 3  # docs/export.md prompts ROMEO:
PROMPT = "First Citizen:\n"
PROB_TOL = 1e-5
GREEDY_TIE = 1e-4  # as tests/test_export.py: ONNX Runtime and torch differ by ~1e-7 in logits on these models


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """(cell, layers) → run directory of a briefly trained model (fp32, 1 thread, 150 steps)."""
    from rnnlm.core.config import TrainConfig
    from rnnlm.training.run import train

    root = tmp_path_factory.mktemp("onnx_runs")
    corpus = root / "tiny.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 150})
    out = {}
    for cell, layers in MODELS:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = ModelConfig(cell=cell, **{**TINY_MODEL, **SHAPES[cell], "num_layers": layers})
        train(corpus, model=model, config=config, out=root / f"{cell}{layers}", threads=1)
        out[cell, layers] = root / f"{cell}{layers}"
    return out


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> dict:
    """(cell, layers) → the exported ONNX model's path (its JSON beside it)."""
    if MISSING:
        pytest.skip(f"{' and '.join(MISSING)} not installed")
    root = tmp_path_factory.mktemp("onnx_models")
    return {key: Path(export_onnx(rnnlm.load(run, device="cpu"), root / f"{key[0]}{key[1]}.onnx")["out"])
            for key, run in runs.items()}


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def metadata(sess) -> dict:
    return json.loads(sess.get_modelmeta().custom_metadata_map[METADATA_KEY])


def zero_state(meta: dict, batch: int = 1) -> dict[str, np.ndarray]:
    return {name: np.zeros((meta["num_layers"], batch, meta["hidden_size"]), np.float32) for name in meta["state"]}


def run(sess, meta: dict, ids: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
    logits, *new_state = sess.run(["logits", *meta["state_outputs"]], {"ids": ids.astype(np.int64), **state})
    return logits, dict(zip(meta["state"], new_state))


def softmax64(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def torch_probs(lm, ids: np.ndarray) -> np.ndarray:
    """Next-character probabilities after each id, from a fresh state, in one fp32 call (then float64)."""
    with torch.inference_mode():
        logits, _ = lm.module(torch.from_numpy(ids.astype(np.int64))[None], lm.module.init_state(1))  # (1, T, V)
    return torch.softmax(logits[0].double(), dim=-1).numpy()


def greedy(sess, meta: dict, prompt_ids, length: int) -> tuple[str, list[float]]:
    """Greedy text from ONNX Runtime and each choice's margin (the top-2 logit gap)."""
    ids, state = np.array([prompt_ids]), zero_state(meta)
    chosen, margins = [], []
    for _ in range(length):
        logits, state = run(sess, meta, ids, state)
        z = logits[0, -1]
        top2 = np.sort(z)[-2:]
        margins.append(float(top2[1] - top2[0]))
        chosen.append(int(z.argmax()))
        ids = np.array([[chosen[-1]]])
    return "".join(meta["chars"][i] for i in chosen), margins


def agreed_prefix(margins: list[float], tie: float) -> int:
    """Characters before the first near-tie: where two float paths must make the same choices."""
    return next((i for i, m in enumerate(margins) if m < tie), len(margins))


@needs_onnx
@pytest.mark.parametrize("cell,layers", MODELS)
def test_probabilities_stepped_in_onnx_runtime_match_torch_over_500_steps(runs, exported, cell, layers):
    lm = rnnlm.load(runs[cell, layers], device="cpu")
    ids = lm.tokenizer.encode(TEXT[:500])  # includes Korean, an emoji and accents
    expected = torch_probs(lm, ids)
    sess = session(exported[cell, layers])
    meta = metadata(sess)
    state, got = zero_state(meta), []
    for i in ids:  # one character a call, the state fed back
        logits, state = run(sess, meta, np.array([[i]]), state)
        got.append(softmax64(logits[0, 0]))
    got = np.array(got)
    assert got.shape == expected.shape == (500, lm.config.vocab_size)
    diff = float(np.abs(got - expected).max())
    print(f"{cell} {layers}-layer: max |p_onnx - p_torch| over 500 steps = {diff:.2e}")
    assert diff < PROB_TOL
    # The same 500 characters in one call (the sequence axis is dynamic): the same probabilities.
    logits, _ = run(sess, meta, ids[None], zero_state(meta))
    assert np.abs(softmax64(logits[0]) - expected).max() < PROB_TOL


@needs_onnx
@pytest.mark.parametrize("cell,layers", MODELS)
def test_greedy_300_characters_equal_generate_temperature_0(runs, exported, cell, layers):
    lm = rnnlm.load(runs[cell, layers], device="cpu")
    python = lm.generate(PROMPT, length=300, temperature=0, echo=False)
    sess = session(exported[cell, layers])
    text, margins = greedy(sess, metadata(sess), lm.tokenizer.encode(PROMPT).tolist(), 300)
    assert len(text) == len(python) == 300
    agreed = agreed_prefix(margins, GREEDY_TIE)
    print(f"{cell} {layers}-layer: greedy agrees on {agreed}/300 characters before the first near-tie, "
          f"identical over all 300: {text == python}")
    assert agreed >= 250 and text[:agreed] == python[:agreed]


@needs_onnx
def test_batch_and_sequence_axes_are_free(exported):
    """Rows of a batch are independent, and a prompt read in pieces leaves the state one call leaves."""
    sess = session(exported["lstm", 2])
    meta = metadata(sess)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, meta["vocab_size"], size=(3, 11))
    logits, state = run(sess, meta, ids, zero_state(meta, 3))
    assert logits.shape == (3, 11, meta["vocab_size"]) and state["h"].shape == (2, 3, meta["hidden_size"])
    for row in range(3):
        alone, alone_state = run(sess, meta, ids[row : row + 1, :4], zero_state(meta))
        alone, alone_state = run(sess, meta, ids[row : row + 1, 4:], alone_state)
        assert np.abs(alone[0] - logits[row, 4:]).max() < 1e-5
        for name in meta["state"]:
            assert np.abs(alone_state[name][:, 0] - state[name][:, row]).max() < 1e-5


@needs_onnx
@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 1), ("rnn", 2)])
def test_metadata_and_json_hold_vocabulary_and_config(runs, exported, cell, layers):
    import onnx

    lm = rnnlm.load(runs[cell, layers], device="cpu")
    path = exported[cell, layers]
    sess = session(path)
    meta = metadata(sess)
    assert json.loads(json_path(path).read_text(encoding="utf-8")) == meta
    assert meta["format"] == "rnnlm-onnx" and meta["cell"] == cell and meta["num_layers"] == layers
    assert meta["config"] == lm.config.to_dict()
    assert meta["chars"] == [lm.tokenizer.decode([i]) for i in range(lm.config.vocab_size)]
    assert "".join(meta["chars"][i] for i in lm.tokenizer.encode("Ünïcödé: 한국어 🙂")) == "Ünïcödé: 한국어 🙂"
    assert meta["bos_id"] == int(lm.tokenizer.encode("\n")[0]) and meta["unk_id"] is None
    state = list(REGISTRY[cell].state)
    assert meta["state"] == state and meta["state_outputs"] == [f"{s}_out" for s in state]
    assert [i.name for i in sess.get_inputs()] == ["ids", *state] == list(meta["inputs"])
    assert [o.name for o in sess.get_outputs()] == ["logits", *meta["state_outputs"]] == list(meta["outputs"])
    shapes = {i.name: i.shape for i in sess.get_inputs()} | {o.name: o.shape for o in sess.get_outputs()}
    assert shapes["ids"] == ["batch", "sequence"] and shapes["logits"] == ["batch", "sequence", lm.config.vocab_size]
    assert shapes[state[0]] == [layers, "batch", lm.config.hidden_size]
    assert sess.get_modelmeta().producer_name == "rnnlm"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    # Each layer is ONNX's own fused operator for the cell (RNN, LSTM, GRU: torch's module names), no unrolled steps.
    ops = [node.op_type for node in model.graph.node]
    assert ops.count(REGISTRY[cell].torch_module) == layers
    if cell == "gru":
        gru = next(node for node in model.graph.node if node.op_type == "GRU")
        assert {a.name: a.i for a in gru.attribute}["linear_before_reset"] == 1


@needs_onnx
def test_the_docs_generation_loop_runs_and_writes_what_generate_writes(runs, tmp_path, capsys):
    page = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- tests/test_onnx.py runs this block[^>]*-->\s*```python\n(.*?)```", page, flags=re.S)
    assert found, "docs/export.md lost the marked ONNX Runtime loop"
    lm = rnnlm.load(runs["lstm", 2], device="cpu")
    export_onnx(lm, tmp_path / "shakespeare.onnx")  # the name the page uses, in this test's directory
    namespace: dict = {}
    exec(compile(found.group(1), "docs/export.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert len(printed) >= 200 and set(printed.rstrip("\n")) <= set(namespace["chars"])
    ours = namespace["generate"](PROMPT, length=300, temperature=0)
    sess = session(tmp_path / "shakespeare.onnx")
    text, margins = greedy(sess, metadata(sess), lm.tokenizer.encode(PROMPT).tolist(), 300)
    assert ours == text  # the same runtime and calls: the same text
    python = lm.generate(PROMPT, length=300, temperature=0, echo=False)
    agreed = agreed_prefix(margins, GREEDY_TIE)
    assert agreed >= 250 and ours[:agreed] == python[:agreed]
    sampled = namespace["generate"](PROMPT, length=100, temperature=0.8, seed=1)
    assert sampled == namespace["generate"](PROMPT, length=100, temperature=0.8, seed=1) != ours[:100]


@needs_onnx
def test_cli_writes_the_model_and_its_json_under_the_output_rule(runs, tmp_path):
    import onnx

    run_dir = runs["gru", 2]
    invoke = lambda *args: CliRunner().invoke(cli, ["export", str(run_dir), "--format", "onnx", *args])  # noqa: E731
    result = invoke("--json")  # the default name: <run name>.onnx in the current directory
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["out"] == "gru2.onnx" and summary["json"] == "gru2.onnx.json" and summary["format"] == "onnx"
    assert summary["inputs"] == ["ids", "h"] and summary["outputs"] == ["logits", "h_out"]
    assert Path("gru2.onnx").stat().st_size == summary["bytes"] and ONNX.is_ours(Path("gru2.onnx"))
    assert ONNX_JSON.is_ours(Path("gru2.onnx.json"))
    out = tmp_path / "m.onnx"
    result = invoke("--out", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "m.onnx.json" in result.stdout
    assert invoke("--out", str(out)).exit_code == 0  # ours: replaced without --force
    # Another program's ONNX model (producer "pytorch") and a foreign JSON beside ours are not ours.
    model = onnx.load(str(out))
    model.producer_name = "pytorch"
    foreign = tmp_path / "theirs.onnx"
    foreign.write_bytes(model.SerializeToString())
    assert not ONNX.is_ours(foreign)
    result = invoke("--out", str(foreign))
    assert result.exit_code == 2 and "is not an ONNX model rnnlm wrote" in result.output and "--force" in result.output
    other = tmp_path / "other.onnx"
    json_path(other).write_text('{"mine": 1}\n', encoding="utf-8")
    result = invoke("--out", str(other))
    assert result.exit_code == 2 and "other.onnx.json" in result.output and not other.exists()  # checked first
    assert invoke("--out", str(other), "--force").exit_code == 0 and ONNX_JSON.is_ours(json_path(other))
    # Never the checkpoint, not even with --force; a missing directory is named.
    result = invoke("--out", str(run_dir / "best.safetensors"), "--force")
    assert result.exit_code == 2 and "input being read" in result.output
    result = invoke("--out", str(tmp_path / "nowhere" / "m.onnx"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_missing_onnx_package_is_one_line_naming_the_extra(runs, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    result = CliRunner().invoke(cli, ["export", str(runs["rnn", 1]), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"error: export --format onnx needs the onnx package: {INSTALL}"]
    assert INSTALL == "pip install 'rnnlm-toolkit[onnx]'" and not (tmp_path / "m.onnx").exists()


def test_a_subword_model_or_an_int8_copy_is_refused():
    config = ModelConfig(cell="gru", vocab_size=5, embed_size=4, hidden_size=4)
    spm = type("Tok", (), {"kind": "spm"})()
    with pytest.raises(InputError, match="needs a character model"):
        onnx_meta(RNNLM(config), spm, {})
    char = type("Tok", (), {"kind": "char"})()
    with pytest.raises(InputError, match="float model"):
        onnx_meta(object(), char, {})
