"""The inspection page: one HTML file with its CSS, JavaScript, SVG and data inline.

Nothing is fetched: no fonts, no CDN, no analytics, so it opens from disk
offline.  To stay small (a 5,000-character page for a 1×512 LSTM is about
2 MB), signals are stored as 4-bit levels (16 colours are all the page shows),
two per byte, base64-encoded: every unit's ``h``, and ``c`` and the gates only
for the units the finder reports plus those asked for.  ``--npz`` keeps
everything at full precision.

Colours: a diverging scale after ColorBrewer's RdBu (colour-blind safe) for the
signals, Purples for bits per character, PRGn for the model-minus-n-gram
difference (green: the model is less surprised).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnlm.core.errors import InputError
from rnnlm.core.pages import script_json
from rnnlm.core.fileio import PAGE, PAGE_MARK, write_output
from rnnlm.inspection.assets import PAGE_CSS, PAGE_JS
from rnnlm.model.unroll import SIGNAL_RANGE, SIGNALS

LEVELS = 16
# RdBu endpoints and middle, interpolated to 16 levels (blue: low, red: high).
_RDBU = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b"]
BITS_COLOURS = ["#fcfbfd", "#efedf5", "#dadaeb", "#bcbddc", "#9e9ac8", "#807dba", "#6a51a3", "#54278f", "#3f007d"]
DIFF_COLOURS = ["#762a83", "#9970ab", "#c2a5cf", "#e7d4e8", "#f7f7f7", "#d9f0d3", "#a6dba0", "#5aae61", "#1b7837"]
BITS_SCALE = 16  # bits stored as round(bits × 16) in a byte: 1/16-bit steps up to ~16 bits


def _hex(c: str) -> np.ndarray:
    return np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def diverging_palette(levels: int = LEVELS) -> list[str]:
    """``levels`` colours from blue through near-white to red, linearly interpolated on RdBu's anchors."""
    anchors = np.stack([_hex(c) for c in _RDBU])
    out = []
    for t in np.linspace(0, len(_RDBU) - 1, levels):
        lo = int(np.floor(t))
        hi = min(lo + 1, len(_RDBU) - 1)
        rgb = anchors[lo] + (anchors[hi] - anchors[lo]) * (t - lo)
        out.append("#" + "".join(f"{int(round(v)):02x}" for v in rgb))
    return out


def _text_colour(hex_colour: str) -> str:
    r, g, b = _hex(hex_colour) / 255
    return "#fff" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45 else "#111"


def quantise(values: np.ndarray, name: str) -> np.ndarray:
    """Values of a signal → integer levels 0…15 over the signal's range (tanh-like [-1, 1], gates [0, 1])."""
    lo, hi = SIGNAL_RANGE[name]
    return np.clip(np.rint((np.asarray(values, dtype=np.float64) - lo) / (hi - lo) * (LEVELS - 1)), 0, LEVELS - 1).astype(np.uint8)


def pack_nibbles(levels: np.ndarray) -> np.ndarray:
    """Rows of 4-bit levels (R, T) → bytes (R, ⌈T/2⌉): step 2j in the low nibble, 2j+1 in the high one."""
    levels = np.asarray(levels, dtype=np.uint8)
    if levels.shape[-1] % 2:
        levels = np.concatenate([levels, np.zeros(levels.shape[:-1] + (1,), dtype=np.uint8)], axis=-1)
    return (levels[..., 0::2] | (levels[..., 1::2] << 4)).astype(np.uint8)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def resolve_units(insp, units: Sequence[tuple[int, int]] | str | None) -> list[tuple[int, int]]:
    """The (layer, unit) pairs whose every signal goes into the page: the finder's, then the requested ones."""
    if units == "all":
        return [(layer, u) for layer in range(insp.num_layers) for u in range(insp.hidden_size)]
    chosen = dict.fromkeys(insp.top_units())
    for layer, unit in units or ():
        if not (0 <= layer < insp.num_layers and 0 <= unit < insp.hidden_size):
            raise InputError(f"unit L{layer + 1} u{unit} does not exist: the model has {insp.num_layers} layer(s) "
                             f"of {insp.hidden_size} units (L1…L{insp.num_layers}, u0…u{insp.hidden_size - 1})")
        chosen.setdefault((layer, unit), None)
    return list(chosen)


def _found(insp) -> tuple[list[dict], list[str]]:
    """The listed units, best held-out score first, and one note per feature without one."""
    rows, notes = [], []
    for result in insp.found:
        listed = [u for u in result.units if u.listed]
        if result.skipped:
            notes.append(f"{result.name}: skipped — {result.skipped}")
        elif not listed:
            best = result.units[0].heldout_score if result.units else 0.0
            notes.append(f"{result.name}: no unit reaches {insp.threshold:g} held out (best {best:+.2f})")
        probe = result.probe["heldout_score"] if result.probe else None
        for u in listed:
            rows.append({"feature": result.name, "kind": result.kind, "layer": u.column.layer, "unit": u.column.unit,
                         "signal": u.column.signal, "held": round(u.heldout_score, 4), "select": round(u.select_score, 4),
                         "probe": None if probe is None else round(probe, 4), "best": u is result.units[0],
                         "probeUnits": result.probe["units_used"] if result.probe else None})
    rows.sort(key=lambda r: (not r["best"], -abs(r["held"])))  # each feature's best unit first, then runners-up
    return rows, notes


def page_data(insp, units: Sequence[tuple[int, int]] | str | None = None) -> dict:
    """The JSON object the page's script reads."""
    full = resolve_units(insp, units)
    h = insp.signals["h"]  # (L, T, H)
    extra = {}
    for layer, unit in full:
        extra[f"{layer}:{unit}"] = {name: _b64(pack_nibbles(quantise(insp.signals[name][layer, :, unit], name)))
                                    for name in SIGNALS[insp.cell] if name != "h"}
    wide = len(insp.vocabulary) > 65536
    found, notes = _found(insp)
    first_unit = (found[0]["layer"], found[0]["unit"], found[0]["signal"]) if found else (insp.num_layers - 1, 0, "h")
    palette = diverging_palette()
    reach = insp.reach
    return {
        "meta": {"checkpoint": insp.checkpoint, "cell": insp.cell, "layers": insp.num_layers, "hidden": insp.hidden_size,
                 "tokenizer": insp.tokenizer, "source": insp.source, "start": insp.start, "chars": len(insp.text),
                 "bpc": round(insp.bpc, 4), "ngramName": insp.ngram_name,
                 "ngramBpc": None if insp.ngram_bits is None else round(float(insp.ngram_bits.mean()), 4),
                 "ngramNote": insp.ngram_note, "threshold": insp.threshold},
        "text": insp.text,
        "steps": int(len(insp.ids)),
        "tokenOfChar": None if insp.tokenizer == "char" else insp.token_of_char.tolist(),
        "signals": list(SIGNALS[insp.cell]),
        "ranges": {name: SIGNAL_RANGE[name] for name in SIGNALS[insp.cell]},
        "palette": palette, "paletteText": [_text_colour(c) for c in palette],
        "bitsColours": BITS_COLOURS, "diffColours": DIFF_COLOURS, "bitsScale": BITS_SCALE,
        "h": [_b64(pack_nibbles(quantise(h[layer].T, "h"))) for layer in range(insp.num_layers)],
        "extra": extra,
        "bits": _b64(np.clip(np.rint(insp.bits * BITS_SCALE), 0, 255).astype(np.uint8)),
        "ngramBits": None if insp.ngram_bits is None else _b64(np.clip(np.rint(insp.ngram_bits * BITS_SCALE), 0, 255).astype(np.uint8)),
        "top": {"ids": _b64(insp.top_ids.astype("<u4" if wide else "<u2")), "wide": wide,
                "probs": _b64(np.clip(np.rint(insp.top_probs * 255), 0, 255).astype(np.uint8)), "k": int(insp.top_ids.shape[1])},
        "vocab": insp.vocabulary,
        "found": found, "notes": notes, "first": first_unit,
        "saturation": {g: np.round(v, 3).tolist() for g, v in insp.saturation.items()},
        "reach": None if reach is None else {"norms": [[float(f"{v:.4g}") for v in row] for row in reach.norms],
                                             "k1pct": reach.k_below(0.01), "half": reach.k_below(0.5), "maxK": reach.max_k,
                                             "windows": reach.windows},
        "wins": insp.wins,
    }


def render(insp, units: Sequence[tuple[int, int]] | str | None = None) -> str:
    """The whole page as a string.

    One f-string fills it in one pass, so no value is read as template; each
    value is escaped for where it lands (the title as HTML text, the data as
    JSON inside a script element), and the rest is rnnlm's own code.
    """
    data = script_json(page_data(insp, units))
    title = f"rnnlm inspect — {Path(insp.checkpoint).parent.name}/{Path(insp.checkpoint).name}"
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>{PAGE_MARK}"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head>\n"
            f"<body><script type='application/json' id='rnnlm-data'>{data}</script>\n{_BODY}\n"
            f"<script>{PAGE_JS}</script></body></html>\n")


def write_page(insp, path: Path, units: Sequence[tuple[int, int]] | str | None = None, *,
               force: bool = False) -> Path:
    """Write the page atomically (a half-written page never replaces a good one), by the rule for files a user names."""
    page = render(insp, units).encode("utf-8")
    return write_output(path, page, PAGE, inputs=insp.read_files, force=force)


_BODY = """<header><h1 id=title>rnnlm inspect</h1><p id=summary></p></header>
<main>
<section id=viewer>
 <div id=controls>
  <label>layer <select id=layer></select></label>
  <label>unit <select id=unit></select></label>
  <label>signal <select id=signal></select></label>
  <label>track <select id=track><option value=model>model bits</option><option value=ngram>n-gram bits</option><option value=diff>n-gram − model</option></select></label>
  <span id=legend></span>
  <span class=hint>← → unit · ↑ ↓ layer · hover a character for the model's top-5</span>
 </div>
 <p id=current></p>
 <div id=text></div>
</section>
<aside>
 <section><h2>Units that track a feature</h2><p class=hint id=found-hint></p><ol id=found></ol>
  <details id=more><summary class=hint>runners-up</summary><ol id=found-more></ol></details><ul id=notes class=hint></ul></section>
 <section><h2>Surprise: model vs n-gram</h2><p class=hint id=wins-hint></p><table id=wins></table></section>
</aside>
<section id=figures>
 <div><h2>Gradient reach</h2><p class=hint id=reach-hint></p><div id=reach></div></div>
 <div><h2>Gate saturation</h2><p class=hint>Each point is a unit: fraction of steps its gate is below 0.1 (x) and above 0.9 (y). Click one to show it.</p><div id=saturation></div></div>
</section>
</main>
<div id=tip hidden></div>"""


__all__ = ["write_page", "render", "page_data", "quantise", "pack_nibbles", "diverging_palette", "resolve_units"]
