"""The JSON summary of an inspection (``rnnlm inspect --json``) and its documented schema.

Layers count from 1 here ("L1 u87", as the page shows them), units from 0.
Scores are on the finder's signed scale: 2·AUROC−1 for ``binary`` features
(``auc`` gives the AUROC itself), Spearman's ρ for ``count`` features.
"""

from __future__ import annotations

from typing import Any

from rnnlm.core.config import CELLS
from rnnlm.inspection.finder import MIN_SIDE

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_PER_LAYER = {"type": "array", "description": "one list per layer (bottom first), one value per unit",
              "items": {"type": "array"}}

INSPECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["checkpoint", "cell", "layers", "hidden", "tokenizer", "text", "bpc", "ngram", "ngram_note", "wins",
                 "threshold", "min_side", "features", "saturation", "gradient_reach", "elapsed_s", "page", "npz"],
    "properties": {
        "checkpoint": {"type": "string"}, "cell": {"type": "string", "enum": list(CELLS)},
        "layers": {"type": "integer"}, "hidden": {"type": "integer"},
        "tokenizer": {"type": "string", "enum": ["char", "bpe", "unigram"]},
        "text": {"type": "object", "required": ["source", "start", "chars", "tokens", "warmup_chars"],
                 "description": "what was inspected: `chars` characters from offset `start` of `source`",
                 "properties": {"source": {"type": "string"}, "start": {"type": "integer"}, "chars": {"type": "integer"},
                                "tokens": {"type": "integer"}, "warmup_chars": {"type": "integer"}}},
        "bpc": {"type": "number", "description": "the model's mean bits per character on the text"},
        "ngram": {"type": ["object", "null"], "required": ["name", "bpc"], "description": "null: see ngram_note",
                  "properties": {"name": {"type": "string"}, "bpc": _NUM}},
        "ngram_note": {"type": ["string", "null"]},
        "wins": {"type": "array", "description": "mean bits per character kind, most saved by the model first", "items": {
            "type": "object", "required": ["kind", "chars", "model_bits", "ngram_bits", "saved_bits"],
            "properties": {"kind": {"type": "string"}, "chars": {"type": "integer"}, "model_bits": _NUM,
                           "ngram_bits": _NUM, "saved_bits": {"type": "number", "description": "n-gram − model"}}}},
        "threshold": {"type": "number", "description": "|held-out score| a unit needs to be listed"},
        "min_side": {"type": "integer", "description": "positives and negatives each half needs, else skipped"},
        "features": {"type": "array", "items": {
            "type": "object", "required": ["name", "kind", "metric", "description", "skipped", "units", "probe"],
            "properties": {
                "name": {"type": "string"}, "kind": {"type": "string", "enum": ["binary", "count"]},
                "metric": {"type": "string", "enum": ["2auc-1", "spearman"]}, "description": {"type": "string"},
                "skipped": {"type": ["string", "null"], "description": "why the feature was not scored"},
                "units": {"type": "array", "description": "best on the first half, ranked", "items": {
                    "type": "object", "required": ["layer", "unit", "signal", "select_score", "heldout_score", "auc", "listed"],
                    "properties": {"layer": {"type": "integer"}, "unit": {"type": "integer"},
                                   "signal": {"type": "string", "enum": ["h", "c"]}, "select_score": _NUM,
                                   "heldout_score": _NUM, "auc": _NUM_OR_NULL, "listed": {"type": "boolean"}}}},
                "probe": {"type": ["object", "null"], "required": ["heldout_score", "units_used", "alpha"],
                          "properties": {"heldout_score": _NUM, "units_used": {"type": "integer"}, "alpha": _NUM}}}}},
        "saturation": {"type": "object", "description": "per sigmoid gate: fraction of steps below 0.1 / above 0.9",
                       "properties": {g: {"type": "object", "required": ["below", "above"],
                                          "properties": {"below": _PER_LAYER, "above": _PER_LAYER}}
                                      for g in ("i", "f", "o", "r", "z")}},
        "gradient_reach": {"type": ["object", "null"], "required": ["max_k", "windows", "norms", "k_below_1pct", "half_life"],
                           "description": "‖∂L_t/∂h_{t−k}‖, mean over windows, k = 1…max_k; null for a text under 3 tokens",
                           "properties": {"max_k": {"type": "integer"}, "windows": {"type": "integer"},
                                          "norms": _PER_LAYER, "k_below_1pct": _INT_OR_NULL, "half_life": _INT_OR_NULL}},
        "elapsed_s": _NUM, "page": {"type": ["string", "null"]}, "npz": {"type": ["string", "null"]},
    },
}


def _r(value: float) -> float:
    return round(float(value), 4)


def _feature(result) -> dict:
    units = [{"layer": u.column.layer + 1, "unit": u.column.unit, "signal": u.column.signal,
              "select_score": _r(u.select_score), "heldout_score": _r(u.heldout_score),
              "auc": _r((u.heldout_score + 1) / 2) if result.kind == "binary" else None, "listed": u.listed}
             for u in result.units]
    probe = None if result.probe is None else {**result.probe, "heldout_score": _r(result.probe["heldout_score"])}
    return {"name": result.name, "kind": result.kind, "metric": result.metric, "description": result.description,
            "skipped": result.skipped, "units": units, "probe": probe}


def report(insp) -> dict:
    """The :data:`INSPECT_SCHEMA` object for an :class:`rnnlm.inspection.inspector.Inspection` (``page``/``npz`` left null)."""
    ngram = None
    if insp.ngram_bits is not None:
        ngram = {"name": insp.ngram_name, "bpc": _r(insp.ngram_bits.mean())}
    saturation = {g: {"below": [[round(float(v), 3) for v in layer] for layer in arr[..., 0]],
                      "above": [[round(float(v), 3) for v in layer] for layer in arr[..., 1]]}
                  for g, arr in insp.saturation.items()}
    return {
        "checkpoint": insp.checkpoint, "cell": insp.cell, "layers": insp.num_layers, "hidden": insp.hidden_size,
        "tokenizer": insp.tokenizer,
        "text": {"source": insp.source, "start": insp.start, "chars": len(insp.text), "tokens": len(insp.ids),
                 "warmup_chars": insp.warmup_chars},
        "bpc": _r(insp.bpc), "ngram": ngram, "ngram_note": insp.ngram_note,
        "wins": [{k: (_r(v) if isinstance(v, float) else v) for k, v in row.items()} for row in insp.wins],
        "threshold": insp.threshold, "min_side": MIN_SIDE,
        "features": [_feature(r) for r in insp.found], "saturation": saturation,
        "gradient_reach": insp.reach.to_dict() if insp.reach is not None else None,
        "elapsed_s": round(insp.elapsed_s, 3), "page": None, "npz": None,
    }


__all__ = ["INSPECT_SCHEMA", "report"]
