"""Keras-like parameter table: textbook single-bias counts beside torch's two-bias layout.

Keras' SimpleRNN(3) on 10 inputs has 3·(3+10)+3 = 42 parameters (one bias
vector); torch's ``nn.RNN`` keeps ``b_ih`` and ``b_hh``, so 45.  Each gate of an
LSTM (4) or GRU (3) repeats that block.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnlm.model.cells import REGISTRY



@dataclass(frozen=True)
class LayerRow:
    name: str
    output_shape: str
    textbook_params: int
    torch_params: int


def recurrent_params(cell: str, hidden: int, inputs: int) -> tuple[int, int]:
    """(textbook, torch) parameters of one recurrent layer."""
    gates = REGISTRY[cell].gates
    weights = gates * hidden * (hidden + inputs)
    return weights + gates * hidden, weights + 2 * gates * hidden


def layer_table(cell: str, num_layers: int, hidden_size: int, input_size: int,
                vocab_size: int | None = None, embed_size: int | None = None) -> list[LayerRow]:
    """Rows for the recurrent stack, framed by Embedding and the output Linear when a vocabulary is given."""
    rows = []
    if vocab_size is not None and embed_size is not None:
        rows.append(LayerRow("Embedding", f"(None, T, {embed_size})", vocab_size * embed_size, vocab_size * embed_size))
    for k in range(num_layers):
        textbook, torch_count = recurrent_params(cell, hidden_size, input_size if k == 0 else hidden_size)
        rows.append(LayerRow(f"{REGISTRY[cell].display} {k + 1}", f"(None, T, {hidden_size})", textbook, torch_count))
    if vocab_size is not None:
        linear = hidden_size * vocab_size + vocab_size
        rows.append(LayerRow("Linear", f"(None, T, {vocab_size})", linear, linear))
    return rows


def totals(rows: list[LayerRow]) -> tuple[int, int]:
    return sum(r.textbook_params for r in rows), sum(r.torch_params for r in rows)


def model_params(cell: str, num_layers: int, hidden_size: int, vocab_size: int, embed_size: int,
                 tie_weights: bool = False) -> int:
    """Trainable parameters of the whole ``RNNLM`` as torch holds them, without building it.

    The one home of the parameter count: ``compare --match params`` solves widths
    with it (it used to build candidate models of up to ~200M parameters just to
    count them), and a test holds it equal to the module's own count.
    """
    total = totals(layer_table(cell, num_layers, hidden_size, embed_size, vocab_size, embed_size))[1]
    return total - (vocab_size * embed_size if tie_weights else 0)


def render_rows(rows: list[LayerRow]) -> list[tuple[str, str, str, str]]:
    return [(r.name, r.output_shape, f"{r.textbook_params:,}", f"{r.torch_params:,}") for r in rows]
