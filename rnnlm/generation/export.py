"""``rnnlm export --format web``: a character model as one HTML page that writes text in any browser.

"Can I use my model outside Python?" is one of the questions char-rnn-style
toolkits hear most (recurrentjs, TensorFlow.js and ml5's charRNN exist for it).
A small character model fits in one file: the page holds its weights, the
forward pass and the sampler inline and asks no network for anything
(docs/developer/rules.md, "Pages"), so it can be mailed, hosted anywhere or opened from
disk.  The page's code lives in :mod:`rnnlm.generation.web`; this module only reads a
loaded model (never the trainer) and fills the template.

Weights travel as int8 with one scale per row by default (≈1.35 bytes per
parameter once base64-encoded; the page computes with the dequantised floats,
activations stay float) or, with ``fp32``, exactly (≈5.4 bytes per parameter),
which is what makes the page's probabilities equal torch's to 1e-4.
"""

from __future__ import annotations

import base64
import html
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rnnlm import __version__
from rnnlm.core.errors import InputError
from rnnlm.core.pages import fill_template, script_json
from rnnlm.core.fileio import PAGE, PAGE_MARK, write_output
from rnnlm.model.cells import REGISTRY
from rnnlm.model.network import RNNLM, num_parameters
from rnnlm.generation.web.kernel import matvec_module

FORMATS = ("web",)
def int8_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: ``weight ≈ q * scale[:, None]``, each row's largest |w| → ±127.

    One scale per output row (as :mod:`rnnlm.model.int8` does) keeps a row with
    small weights from losing its precision to another row's large ones.
    """
    weight = np.asarray(weight, dtype=np.float32)
    scale = np.maximum(np.abs(weight).max(axis=1) / 127, 1e-12).astype(np.float32)  # (rows,)
    q = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)  # (rows, cols)
    return q, scale


class _Blob:
    """Tensors appended to one byte string, each at a 4-byte-aligned offset (so the page can view floats in place)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array).tobytes()
        offset = self.size
        pad = -len(data) % 4
        self.parts.append(data + bytes(pad))
        self.size += len(data) + pad
        return offset

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _tensors(module: RNNLM, fp32: bool) -> tuple[dict[str, dict[str, Any]], bytes]:
    """The state dict as little-endian bytes and the page's index of it: matrices int8 (or f32), vectors f32."""
    blob = _Blob()
    index: dict[str, dict[str, Any]] = {}
    state = module.state_dict()
    for name, tensor in state.items():
        if name == "decoder.weight" and module.config.tie_weights:
            continue  # the page reuses embedding.weight
        array = tensor.detach().float().cpu().numpy().astype("<f4")
        entry: dict[str, Any] = {"shape": list(array.shape)}
        if array.ndim == 2 and not fp32:
            q, scale = int8_rows(array)
            entry.update(dtype="int8", offset=blob.add(q), scale_offset=blob.add(scale.astype("<f4")))
        else:
            entry.update(dtype="f32", offset=blob.add(array))
        index[name] = entry
    return index, blob.bytes()


def checkpoint_facts(lm) -> dict[str, Any]:
    """What the page shows about where the model came from: corpus, validation bpc, checkpoint, step."""
    meta = lm.meta
    names = meta.get("corpus", {}).get("names") or ["an unnamed corpus"]
    val_bpc = meta.get("metrics", {}).get("val_bpc")
    return {"corpus": ", ".join(names), "val_bpc": val_bpc if isinstance(val_bpc, (int, float)) else None,
            "checkpoint": f"{lm.path.parent.name}/{lm.path.name}", "step": int(meta.get("step", 0))}


def build_page(module: RNNLM, tokenizer, facts: dict[str, Any], *, fp32: bool = False) -> str:
    """The HTML text of the page for ``module`` (a float :class:`RNNLM`) and its char ``tokenizer``.

    ``facts``: ``corpus``, ``val_bpc``, ``checkpoint``, ``step`` (shown on the page).
    """
    return _page(module, tokenizer, facts, fp32)[0]


def _page(module: RNNLM, tokenizer, facts: dict[str, Any], fp32: bool) -> tuple[str, int]:
    """:func:`build_page`'s page and the bytes its weights take there (their base64 text), for export's size report."""
    if getattr(tokenizer, "kind", None) != "char":
        raise InputError(f"export --format web needs a character model; this checkpoint uses a "
                         f"{getattr(tokenizer, 'kind', 'unknown')} (sentencepiece) tokenizer, whose encoder the page lacks")
    if not isinstance(module, RNNLM):
        raise InputError("export reads the float model: load the checkpoint again instead of its quantize_int8() copy")
    config = module.config
    cell = REGISTRY[config.cell]
    index, weights = _tensors(module, fp32)
    bos = None if tokenizer.unknown_chars("\n") else int(tokenizer.encode("\n")[0])  # as LanguageModel primes
    meta = {
        "format": "rnnlm-web", "version": 1, "rnnlm": __version__, **facts,
        "cell": config.cell, "cell_display": cell.display, "gates": cell.gates, "state": list(cell.state),
        "num_layers": config.num_layers, "hidden_size": config.hidden_size,
        "embed_size": config.embed_size, "vocab_size": config.vocab_size, "tied": config.tie_weights,
        "parameters": num_parameters(module), "weights": "fp32" if fp32 else "int8",
        "chars": [tokenizer.decode([i]) for i in range(config.vocab_size)], "unk_id": tokenizer.unk_id,
        "bos_id": bos, "tensors": index, "kernel": base64.b64encode(matvec_module()).decode("ascii"),
    }
    files = resources.files("rnnlm.generation.web")
    heading = f"{facts['corpus']} · {config.cell.upper()} {config.num_layers}×{config.hidden_size}"
    weights_text = base64.b64encode(weights).decode("ascii")
    page = fill_template(files.joinpath("page.html").read_text("utf-8"), {
        "GENERATOR": PAGE_MARK,
        "TITLE": html.escape(f"{heading} — rnnlm"),
        "HEADING": html.escape(heading),
        "META": script_json(meta),
        "WEIGHTS": weights_text,
        "ENGINE": files.joinpath("engine.js").read_text("utf-8"),
        "CELL": cell.js(),  # the cell's step, cellStep, which engine.js calls
        "UI": files.joinpath("ui.js").read_text("utf-8"),
    })
    return page, len(weights_text)


def export_web(lm, out: str | Path, *, fp32: bool = False, force: bool = False) -> dict[str, Any]:
    """Write ``lm`` (from :func:`rnnlm.load`) as one self-contained HTML page at ``out``; returns a summary.

    An existing file at ``out`` is replaced only if it is a page rnnlm wrote, or with ``force``; never the
    checkpoint (:func:`rnnlm.core.fileio.check_output`).
    """
    facts = checkpoint_facts(lm)
    page, weights_bytes = _page(lm.module, lm.tokenizer, facts, fp32)
    out = write_output(out, page.encode("utf-8"), PAGE, inputs=[lm.path], force=force)
    size = out.stat().st_size
    params = num_parameters(lm.module)
    config = lm.config
    # bytes_per_parameter (the whole file over the parameters) stays for --json readers; the page's code and
    # metadata (~22 kB, a few bytes more per vocabulary entry) are reported apart from the weights, which alone
    # grow with the model.
    return {"out": str(out), "format": "web", "weights": "fp32" if fp32 else "int8", "bytes": size,
            "parameters": params, "bytes_per_parameter": round(size / params, 3),
            "weights_bytes": weights_bytes, "weights_bytes_per_parameter": round(weights_bytes / params, 3),
            "fixed_bytes": size - weights_bytes, "cell": config.cell,
            "num_layers": config.num_layers, "hidden_size": config.hidden_size, "vocab_size": config.vocab_size,
            **facts}


__all__ = ["export_web", "build_page", "int8_rows", "FORMATS"]
