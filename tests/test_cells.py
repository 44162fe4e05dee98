"""A cell is its module: each registry entry carries the cell's equations, and the code that runs them names no cell.

The numpy reference, the torch unroll (inspect, gradient reach), int8 and the
exported page all call the entry's step (docs/developer/architecture.md,
"Adding a cell").  The proof: two toy cells that exist only in this file (a
ReLU SimpleRNN, and an LSTM written out with its own signals and with ``W_hh h``
read apart) are registered, and every one of those paths runs them against
torch's fused kernels with no other change; and a scan keeps per-cell branches
(``cell == "lstm"``, ``{rnn: 1, lstm: 4, gru: 3}``) from coming back.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlm.core import config as core_config
from rnnlm.core.config import CELLS, ModelConfig
from rnnlm.data.tokenizers.char import CharTokenizer
from rnnlm.generation.export import build_page
from rnnlm.inspection.gradreach import gradient_reach
from rnnlm.model import cells
from rnnlm.model.cells import REGISTRY, Cell
from rnnlm.model.cells.base import summed
from rnnlm.model.int8 import quantize_int8
from rnnlm.model.network import RNNLM
from rnnlm.model.reference import NUMPY, lm_forward
from rnnlm.model.unroll import TORCH, unroll

ROOT = Path(__file__).resolve().parents[1]
CELL_DIR = ROOT / "rnnlm" / "model" / "cells"
JS_SIGNATURE = "function cellStep(F, gx, gh, h, rest, b, bih, bhh, H)"
# The places a cell's equations run (and the page's facts): they ask the registry entry, never a cell's name.
GENERIC = ("rnnlm/model/reference.py", "rnnlm/model/unroll.py", "rnnlm/model/int8.py", "rnnlm/generation/export.py",
           "rnnlm/generation/web/engine.js", "rnnlm/generation/web/ui.js")


# --- the registry and its files ---------------------------------------------------------------------------------------


def test_every_cell_module_is_registered_with_its_page_step_beside_it():
    modules = {p.stem for p in CELL_DIR.glob("*.py")} - {"__init__", "base"}
    assert modules == set(CELLS) == set(REGISTRY)
    assert {p.stem for p in CELL_DIR.glob("*.js")} == set(CELLS)
    for name, cell in REGISTRY.items():
        assert cell.name == name and cell.state[0] == "h" == cell.signals[0]
        assert set(cell.sigmoid_gates) <= set(cell.signals)
        assert JS_SIGNATURE in cell.js()


def _literal(token: str):
    try:
        return ast.literal_eval(token)
    except ValueError:  # an f-string
        return None


def _named_cells(path: Path, names) -> list[str]:
    """Lines of ``path`` that spell a cell's name as a value: a string literal, or a JS object key."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        return [f"{path.name}:{tok.start[0]}: {tok.line.strip()}" for tok in tokens
                if tok.type == tokenize.STRING and not tok.string.startswith(('"""', "'''"))
                and _literal(tok.string) in names]
    alternatives = "|".join(map(re.escape, names))
    pattern = re.compile(rf"""(["'`])({alternatives})\1|[{{,]\s*({alternatives})\s*:""")
    return [f"{path.name}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]


def test_the_code_that_runs_a_cell_names_none(tmp_path):
    for rel in GENERIC:
        assert _named_cells(ROOT / rel, CELLS) == [], "a per-cell branch: ask REGISTRY[cell] instead"
    # The scan finds what it looks for.
    (tmp_path / "a.py").write_text('"""lstm in a docstring is prose."""\nif cell == "lstm":\n    pass\n')
    (tmp_path / "a.js").write_text('// lstm in a comment\nconst G = {rnn: 1, lstm: 4}[cell];\nif (cell === "gru") {}\n')
    assert [hit.split(":")[1] for hit in _named_cells(tmp_path / "a.py", CELLS)] == ["2"]
    assert [hit.split(":")[1] for hit in _named_cells(tmp_path / "a.js", CELLS)] == ["2", "3"]


# --- the step, one function for numpy and torch -----------------------------------------------------------------------


def _inputs(cell: Cell, seed: int = 0, batch: int = 3, hidden: int = 5):
    rng = np.random.default_rng(seed)
    gx, gh = (rng.normal(size=(batch, cell.gates * hidden)) for _ in range(2))
    state = tuple(rng.uniform(-1, 1, size=(batch, hidden)) for _ in cell.state)  # h in [-1, 1], as a cell leaves it
    return gx, gh, state


@pytest.mark.parametrize("name", CELLS)
def test_the_step_is_the_same_function_in_numpy_and_torch(name):
    cell = REGISTRY[name]
    gx, gh, state = _inputs(cell)
    new, signals = cell.step(NUMPY, gx, gh, state)
    t_new, t_signals = cell.step(TORCH, torch.from_numpy(gx), torch.from_numpy(gh), tuple(map(torch.from_numpy, state)))
    assert len(new) == len(t_new) == len(cell.state) and all(s.shape == (3, 5) for s in new)
    assert set(signals) == set(t_signals) == set(cell.signals) - {"h"}
    for got, want in zip([*t_new, *t_signals.values()], [*new, *(signals[k] for k in t_signals)]):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    for signal in cell.signals:
        values = new[0] if signal == "h" else signals[signal]
        lo, hi = cell.signal_range(signal)
        assert lo <= values.min() and values.max() <= hi, signal
    if not cell.gh_apart:  # the sum alone (what int8's one product gives) is all the step reads
        fused, fused_signals = cell.step(NUMPY, summed(gx, gh), None, state)
        for got, want in zip([*fused, *fused_signals.values()], [*new, *signals.values()]):
            np.testing.assert_allclose(got, want, atol=1e-12)


# --- a cell that only this file knows ---------------------------------------------------------------------------------


class ToyCell(Cell):
    """A registry entry whose page step is a string here rather than a file beside a module."""

    def js(self) -> str:
        return TOY_JS[self.name]


def relu_step(ops, gx, gh, state):
    z = summed(gx, gh)
    return (z * (z > 0),), {}  # relu, in arithmetic numpy and torch share


def lstm_apart_step(ops, gx, gh, state):
    """The LSTM again, written block by block from gx and gh apart, recording the raw c and the forget gate."""
    h, c = state
    H = h.shape[-1]
    i, f, g, o = (gx[:, k * H : (k + 1) * H] + gh[:, k * H : (k + 1) * H] for k in range(4))
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return (ops.sigmoid(o) * ops.tanh(c), c), {"cell": c, "forget": ops.sigmoid(f)}


TOYS = {
    "relu": ToyCell("relu", "SimpleRNN(relu)", "RNN", gates=1, state=("h",), signals=("h",), sigmoid_gates=(),
                    step=relu_step, torch_kwargs={"nonlinearity": "relu"}),
    "lstm_apart": ToyCell("lstm_apart", "LSTM (apart)", "LSTM", gates=4, state=("h", "c"),
                          signals=("h", "cell", "forget"), sigmoid_gates=("forget",), step=lstm_apart_step,
                          gh_apart=True),
}
TOY_JS = {
    "relu": JS_SIGNATURE + " { for (let i = 0; i < H; i++) F[h + i] = Math.max(0, F[gx + i] + F[gh + i] + b[i]); }",
    "lstm_apart": JS_SIGNATURE + """ {
  const c = rest[0], z = k => F[gx + k] + bih[k] + F[gh + k] + bhh[k];
  for (let i = 0; i < H; i++) {
    c[i] = sigmoid(z(H + i)) * c[i] + sigmoid(z(i)) * Math.tanh(z(2 * H + i));
    F[h + i] = sigmoid(z(3 * H + i)) * Math.tanh(c[i]);
  }
}""",
}


@pytest.fixture(params=sorted(TOYS))
def toy(request, monkeypatch) -> Cell:
    """A toy cell registered for one test: its entry in the registry and its name among what --cell accepts."""
    cell = TOYS[request.param]
    monkeypatch.setitem(cells._CELLS, cell.name, cell)
    monkeypatch.setattr(core_config, "CELLS", (*core_config.CELLS, cell.name))
    return cell


def _toy_model(cell: Cell, layers: int = 2) -> RNNLM:
    torch.manual_seed(0)
    config = ModelConfig(cell=cell.name, vocab_size=11, embed_size=6, hidden_size=7, num_layers=layers, dropout=0.0)
    return RNNLM(config).eval()


def test_a_new_cell_runs_in_the_reference_the_unroll_gradient_reach_and_int8(toy):
    model = _toy_model(toy)
    ids = torch.randint(0, 11, (60,), generator=torch.Generator().manual_seed(1))
    state = tuple(0.5 * torch.randn(s.shape, generator=torch.Generator().manual_seed(2)) for s in model.init_state(1))
    assert len(state) == len(toy.state)
    with torch.no_grad():
        logits, final = model(ids[None], state)  # torch's fused kernel: the ground truth

    params = {k: v.double().numpy() for k, v in model.state_dict().items()}
    ref_logits, ref_final = lm_forward(toy.name, params, ids[None].numpy(), tuple(s.double().numpy() for s in state))
    np.testing.assert_allclose(ref_logits, logits.double().numpy(), atol=1e-5)
    for want, got in zip(final, ref_final, strict=True):
        np.testing.assert_allclose(got, want.double().numpy(), atol=1e-5)

    signals, u_logits = unroll(model, ids, state)
    assert set(signals) == set(toy.signals) and all(v.shape == (2, 60, 7) for v in signals.values())
    torch.testing.assert_close(u_logits, logits[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(signals["h"][:, -1], final[0][:, 0], atol=1e-5, rtol=0)

    reach = gradient_reach(model, ids.numpy(), max_k=6, windows=1, warmup=2)
    assert reach.norms.shape == (2, 6) and np.isfinite(reach.norms).all()

    quantized = quantize_int8(model)
    assert [len(packed) for packed in quantized.layers] == [2 if toy.gh_apart else 1] * 2
    with torch.inference_mode():
        q_logits, q_final = quantized(ids[None], state)
    assert [s.shape for s in q_final] == [s.shape for s in final]
    assert (q_logits - logits).abs().max() < 5e-2


def test_a_new_cell_runs_in_the_exported_page(browser, toy, tmp_path):
    from pages import open_page

    model = _toy_model(toy)
    tokenizer = CharTokenizer("abcdefghijk")
    facts = {"corpus": "toy.txt", "val_bpc": None, "checkpoint": "toy/best.safetensors", "step": 0}
    path = tmp_path / "toy.html"
    path.write_text(build_page(model, tokenizer, facts, fp32=True), encoding="utf-8")
    ids = torch.randint(0, 11, (80,), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        logits, _ = model(ids[None], model.init_state(1))
    expected = torch.softmax(logits[0].double(), dim=-1).numpy()
    page = open_page(browser, path)
    for backend in ("wasm-simd", "js"):
        assert page.js("return rnnlm.setBackend(arguments[0])", backend) == backend
        got = np.array(page.js("return rnnlm.probabilities(arguments[0])", ids.tolist()))
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4, backend
    assert page.js("return document.getElementById('facts').textContent").startswith(toy.display)
    assert page.console_errors() == [] and page.network_requests() == []
