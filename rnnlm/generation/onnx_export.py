"""``rnnlm export --format onnx``: a character model as an ONNX graph that ONNX Runtime runs in any language.

ONNX Runtime keeps nothing between calls, so the recurrent state is explicit:
the graph takes the state and returns the next one, and the caller feeds it
back (zeros the first time)::

    inputs   ids     (batch, sequence)       int64
             h [, c] (layers, batch, hidden) float32    the cell's state, named as its registry entry's Cell.state
    outputs  logits  (batch, sequence, vocab) float32   every position's next-character logits
             h_out [, c_out]                            the state after the last position

Batch and sequence are dynamic, so one graph reads a prompt in one call and
then steps one character at a time (sequence 1).  Each layer is ONNX's own
``RNN`` / ``LSTM`` / ``GRU`` operator (GRU with ``linear_before_reset=1``,
torch's form), which every runtime implements with a fused kernel.

The vocabulary and the configuration travel with the model: one JSON object
(``format``, the inputs and outputs, the cell, its sizes, ``chars`` (id →
character), ``unk_id``, ``bos_id``, the model config and where the checkpoint
came from) in the model's ``metadata_props`` under the key ``rnnlm`` (ONNX
Runtime's model metadata in Python, C, C++, C#, Java and Go), and the same
object in ``<out>.json`` beside it, for onnxruntime-web and -node, which
cannot read a model's metadata.  Both files follow the rule for files a user
names (docs/developer/rules.md, "Files a user names"); their marks are
:data:`rnnlm.core.fileio.ONNX` and :data:`~rnnlm.core.fileio.ONNX_JSON`.

The exporter is torch's TorchScript-based one (``torch.onnx.export(...,
dynamo=False)``).  Measured on torch 2.13 with onnxscript 0.7, the default
``torch.export``-based exporter unrolls a SimpleRNN into one node per time step
and, for SimpleRNN and for LSTM/GRU of two or more layers, fixes the sequence
length to the example's (a model traced on 5 characters refuses 1); for a
one-layer LSTM/GRU it keeps the ONNX operator but declares the logits with the
example's length, so ONNX Runtime warns at every call.  It also takes 4–8 s
per model, and needs onnxscript.  The TorchScript exporter gives every cell at
any depth the fused operator with dynamic batch and sequence, in about 0.2 s,
and needs only ``onnx``.  torch marks it deprecated; when it goes, this module
is where the other exporter comes in, and ``tests/test_onnx.py`` says whether
it then holds.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnlm import __version__
from rnnlm.core.errors import InputError, RnnlmError
from rnnlm.core.fileio import ONNX, ONNX_JSON, ONNX_JSON_FORMAT, ONNX_PRODUCER, check_output, write_output
from rnnlm.generation.export import checkpoint_facts
from rnnlm.model.cells import REGISTRY
from rnnlm.model.network import RNNLM, num_parameters

OPSET = 17  # ONNX Runtime ≥ 1.13 (2022) and every current runtime run it; RNN/LSTM/GRU are unchanged since opset 14
METADATA_KEY = "rnnlm"  # the key of metadata_props that holds the JSON
INSTALL = "pip install 'rnnlm-toolkit[onnx]'"
MAX_BYTES = 2**31 - 2**24  # protobuf's 2 GB limit on one message, less room for the graph and metadata


def json_path(out: str | Path) -> Path:
    """The JSON written beside an ONNX model: its name with ``.json`` added (``model.onnx`` → ``model.onnx.json``)."""
    out = Path(out).expanduser()
    return out.with_name(out.name + ".json")


def _onnx():
    """The onnx package (the ``onnx`` extra), or one line saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise RnnlmError(f"export --format onnx needs the onnx package: {INSTALL}") from None
    return onnx


class _Graph(nn.Module):
    """``RNNLM.forward`` with the state as separate tensors in and out, since an ONNX graph's inputs are flat."""

    def __init__(self, module: RNNLM) -> None:
        super().__init__()
        self.module = module

    def forward(self, ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new_state = self.module(ids, tuple(state))  # (B, T, V), each (L, B, H)
        return (logits, *new_state)


def onnx_meta(module: RNNLM, tokenizer, facts: dict[str, Any]) -> dict[str, Any]:
    """The JSON object stored in the model's metadata and beside it: how to call the graph, and the vocabulary."""
    if getattr(tokenizer, "kind", None) != "char":
        raise InputError(f"export --format onnx needs a character model; this checkpoint uses a "
                         f"{getattr(tokenizer, 'kind', 'unknown')} (sentencepiece) tokenizer, whose encoder "
                         f"would have to travel with the model")
    if not isinstance(module, RNNLM):
        raise InputError("export reads the float model: load the checkpoint again instead of its quantize_int8() copy")
    config = module.config
    cell = REGISTRY[config.cell]
    state_shape = [config.num_layers, "batch", config.hidden_size]
    bos = None if tokenizer.unknown_chars("\n") else int(tokenizer.encode("\n")[0])  # as LanguageModel primes
    return {
        "format": ONNX_JSON_FORMAT, "version": 1, "rnnlm": __version__, "torch": torch.__version__, "opset": OPSET,
        "inputs": {"ids": {"shape": ["batch", "sequence"], "dtype": "int64"},
                   **{name: {"shape": state_shape, "dtype": "float32"} for name in cell.state}},
        "outputs": {"logits": {"shape": ["batch", "sequence", config.vocab_size], "dtype": "float32"},
                    **{f"{name}_out": {"shape": state_shape, "dtype": "float32"} for name in cell.state}},
        "state": list(cell.state), "state_outputs": [f"{name}_out" for name in cell.state],
        "cell": config.cell, "cell_display": cell.display, "gates": cell.gates,
        "num_layers": config.num_layers, "hidden_size": config.hidden_size, "embed_size": config.embed_size,
        "vocab_size": config.vocab_size, "parameters": num_parameters(module), "config": config.to_dict(),
        "chars": [tokenizer.decode([i]) for i in range(config.vocab_size)], "unk_id": tokenizer.unk_id,
        "bos_id": bos, **facts,
    }


def build_onnx(module: RNNLM, meta: dict[str, Any]) -> bytes:
    """The serialized ONNX model of ``module`` (a float :class:`RNNLM`) with ``meta`` in its metadata."""
    onnx = _onnx()
    if num_parameters(module) * 4 > MAX_BYTES:
        raise InputError(f"a model of {num_parameters(module):,} parameters exceeds the 2 GB one ONNX file can hold")
    config = module.config
    device = next(module.parameters()).device
    # Batch 2 and 3 characters: no axis of size 1, which the tracer could take for a constant.
    ids = torch.zeros((2, 3), dtype=torch.long, device=device)
    state = module.init_state(2, device)
    buffer = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():
            # Chosen, not overlooked (module docstring): the TorchScript exporter's deprecation; the tracer's notes
            # on nn.RNNBase's Python-side shape checks (the axes are declared dynamic below); and the GRU's advice to
            # make the initial state an input, which it is.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=r".*(TorchScript-based ONNX export|feature will be removed)")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=r".*with a variable length with (LSTM|GRU|RNN)")
            torch.onnx.export(
                _Graph(module).eval(), (ids, *state), buffer, dynamo=False, opset_version=OPSET,
                input_names=["ids", *meta["state"]], output_names=["logits", *meta["state_outputs"]],
                dynamic_axes={"ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"},
                              **{name: {1: "batch"} for name in (*meta["state"], *meta["state_outputs"])}},
                do_constant_folding=True,
            )
    finally:
        module.train(was_training)
    model = onnx.load_from_string(buffer.getvalue())
    model.producer_name, model.producer_version = ONNX_PRODUCER, __version__  # the mark (core/fileio.py)
    model.graph.name = f"rnnlm_{config.cell}_{config.num_layers}x{config.hidden_size}"
    model.doc_string = (f"rnnlm {config.cell} {config.num_layers}x{config.hidden_size}, vocabulary {config.vocab_size}: "
                        f"ids (batch, sequence) and the state {', '.join(meta['state'])} (layers, batch, hidden) in; "
                        f"logits (batch, sequence, vocab) and {', '.join(meta['state_outputs'])} out. Feed the state "
                        f"back at the next call (zeros at the first). Vocabulary and config: metadata_props "
                        f"'{METADATA_KEY}' (JSON).")
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, ensure_ascii=False)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(lm, out: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Write ``lm`` (from :func:`rnnlm.load`) as an ONNX model at ``out`` and its JSON at ``<out>.json``.

    Returns a summary.  Existing files are replaced only if rnnlm wrote them (an ONNX model whose producer is
    rnnlm; the JSON that goes with one), or with ``force``; never the checkpoint
    (:func:`rnnlm.core.fileio.check_output`), and both are checked before the export starts.
    """
    out = Path(out).expanduser()
    side = json_path(out)
    check_output(out, ONNX, inputs=[lm.path], force=force)
    check_output(side, ONNX_JSON, inputs=[lm.path], force=force, flag="--out's JSON")
    meta = onnx_meta(lm.module, lm.tokenizer, checkpoint_facts(lm))
    data = build_onnx(lm.module, meta)
    write_output(out, data, ONNX, inputs=[lm.path], force=force)
    write_output(side, (json.dumps(meta, ensure_ascii=False, indent=1) + "\n").encode("utf-8"), ONNX_JSON,
                 inputs=[lm.path], force=force, flag="--out's JSON")
    size = out.stat().st_size
    params = meta["parameters"]
    return {"out": str(out), "json": str(side), "format": "onnx", "weights": "fp32", "bytes": size,
            "json_bytes": side.stat().st_size, "parameters": params, "bytes_per_parameter": round(size / params, 3),
            "opset": OPSET, "inputs": list(meta["inputs"]), "outputs": list(meta["outputs"]), "cell": meta["cell"],
            "num_layers": meta["num_layers"], "hidden_size": meta["hidden_size"], "vocab_size": meta["vocab_size"],
            **{key: meta[key] for key in ("corpus", "val_bpc", "checkpoint", "step")}}


__all__ = ["export_onnx", "build_onnx", "onnx_meta", "json_path", "METADATA_KEY", "OPSET"]
