"""The inspection page's stylesheet and script, inlined by :mod:`rnnlm.inspection.page`.

Kept as Python strings (not package data files) so an installed wheel always
has them.  The script reads the JSON in ``#rnnlm-data``, decodes the 4-bit
signal levels and draws everything with plain DOM and SVG: no library, no
request.  Colour reads back from each character's ``style.backgroundColor``,
which the browser tests rely on.
"""

PAGE_CSS = """
:root{--fg:#1d1d1f;--muted:#666;--line:#ddd;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
body{margin:0 1.2rem 2rem}header h1{font-size:1.25rem;margin:.8rem 0 .2rem}#summary{margin:0 0 .6rem;color:var(--muted)}
main{display:grid;grid-template-columns:minmax(0,3fr) minmax(18rem,1.3fr);gap:1rem 1.5rem}
#figures{grid-column:1/-1;display:flex;flex-wrap:wrap;gap:2rem}h2{font-size:1rem;margin:.6rem 0 .3rem}
#controls{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;font-size:.9rem;position:sticky;top:0;background:#fff;padding:.4rem 0;z-index:2;border-bottom:1px solid var(--line)}
select{font:inherit}.hint{color:var(--muted);font-size:.82rem}#current{margin:.4rem 0;font-size:.9rem}
#text{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:14px;line-height:1.75;white-space:pre-wrap;word-break:break-all;max-height:70vh;overflow-y:auto;border:1px solid var(--line);padding:.5rem}
.ch{border-bottom:4px solid transparent;cursor:default}.nl{opacity:.55}
#legend{display:inline-flex;align-items:center;gap:.25rem;font-size:.8rem}#legend i{display:inline-block;width:10px;height:12px}
#found{padding-left:1.4rem;font-size:.88rem}#found li{cursor:pointer;padding:.12rem .2rem;border-radius:3px}#found li:hover,#found li.on{background:#eef}
#notes{padding-left:1.1rem;margin-top:.3rem}table{border-collapse:collapse;font-size:.82rem}td,th{padding:.1rem .45rem;text-align:right}
td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#f6f6f6}
#tip{position:fixed;z-index:5;background:#fff;border:1px solid #999;border-radius:4px;padding:.4rem .6rem;font-size:.82rem;box-shadow:0 2px 8px rgba(0,0,0,.2);pointer-events:none;max-width:22rem}
#tip ol{margin:.2rem 0 0;padding-left:1.3rem}#tip li.hit{font-weight:bold}#tip code{background:#f2f2f2;padding:0 .2rem}
svg text{font-size:10px;fill:#444}svg .pt{cursor:pointer}svg .pt:hover{stroke:#000;stroke-width:1.5}
.sat{display:inline-block;margin-right:.6rem;vertical-align:top}
"""

PAGE_JS = r"""
"use strict";
(() => {
const D = JSON.parse(document.getElementById("rnnlm-data").textContent);
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const bytes = (b64) => { const s = atob(b64), a = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; };
const chars = Array.from(D.text), N = chars.length, T = D.steps, stride = Math.ceil(T / 2), M = D.meta;
const H = D.h.map(bytes);
const extra = {};
for (const [key, sigs] of Object.entries(D.extra)) { extra[key] = {}; for (const [s, b] of Object.entries(sigs)) extra[key][s] = bytes(b); }
const bits = bytes(D.bits), ngram = D.ngramBits ? bytes(D.ngramBits) : null;
const topRaw = bytes(D.top.ids), topIds = D.top.wide ? new Uint32Array(topRaw.buffer) : new Uint16Array(topRaw.buffer);
const topP = bytes(D.top.probs), K = D.top.k;
const stepOf = D.tokenOfChar ? (i) => D.tokenOfChar[i] : (i) => i;
const cur = { layer: D.first[0], unit: D.first[1], signal: D.first[2], track: "model" };

function nibbles(packed, offset) {
  const out = new Uint8Array(T);
  for (let t = 0; t < T; t++) { const b = packed[offset + (t >> 1)]; out[t] = t & 1 ? b >> 4 : b & 15; }
  return out;
}
function signalsOf(layer, unit) {
  const e = extra[layer + ":" + unit];
  return D.signals.filter((s) => s === "h" || (e && e[s]));
}
function levels(layer, unit, signal) {
  if (signal === "h") return nibbles(H[layer], unit * stride);
  const e = extra[layer + ":" + unit];
  return e && e[signal] ? nibbles(e[signal], 0) : null;
}
const value = (q, signal) => { const [lo, hi] = D.ranges[signal]; return lo + (hi - lo) * q / (D.palette.length - 1); };
const show = (c) => c === "\n" ? "↵" : c === " " ? "␣" : c === "\t" ? "⇥" : c;

// The text: one span per character; a newline shows as ↵ and still breaks the line.
const textEl = $("text"), spans = new Array(N), frag = document.createDocumentFragment();
for (let i = 0; i < N; i++) {
  const s = document.createElement("span");
  s.className = chars[i] === "\n" ? "ch nl" : "ch";
  s.textContent = chars[i] === "\n" ? "↵" : chars[i];
  s.dataset.i = i;
  spans[i] = s;
  frag.appendChild(s);
  if (chars[i] === "\n") frag.appendChild(document.createTextNode("\n"));
}
textEl.appendChild(frag);

const fmt = (x, d = 2) => (x >= 0 ? "+" : "") + x.toFixed(d);
function scoreText(r, score) {
  return r.kind === "binary" ? "AUC " + ((1 + Math.abs(score)) / 2).toFixed(2) + (score < 0 ? " (inverse)" : "") : "ρ " + fmt(score);
}

function paint() {
  const avail = signalsOf(cur.layer, cur.unit);
  if (!avail.includes(cur.signal)) cur.signal = "h";
  const q = levels(cur.layer, cur.unit, cur.signal);
  for (let i = 0; i < N; i++) {
    const l = q[stepOf(i)];
    spans[i].style.backgroundColor = D.palette[l];
    spans[i].style.color = D.paletteText[l];
  }
  $("layer").value = String(cur.layer);
  $("unit").value = String(cur.unit);
  const sig = $("signal");
  sig.replaceChildren(...avail.map((s) => new Option(s === "c" ? "c (tanh c)" : s, s)));
  sig.value = cur.signal;
  const [lo, hi] = D.ranges[cur.signal];
  $("legend").replaceChildren(document.createTextNode(lo.toFixed(0)), ...D.palette.map((c) => { const i = document.createElement("i"); i.style.background = c; return i; }), document.createTextNode("+" + hi.toFixed(0)));
  const hit = D.found.filter((f) => f.layer === cur.layer && f.unit === cur.unit);
  $("current").textContent = `L${cur.layer + 1} u${cur.unit} · ${cur.signal} · signals stored: ${avail.join(" ")}` +
    (avail.length === 1 && D.signals.length > 1 ? " (gates only for found or requested units: --units)" : "") +
    (hit.length ? " · tracks " + hit.map((f) => `${f.feature} (${f.signal}: ${scoreText(f, f.held)})`).join(", ") : "");
  for (const li of document.querySelectorAll("#found li, #found-more li")) li.classList.toggle("on", +li.dataset.layer === cur.layer && +li.dataset.unit === cur.unit && li.dataset.signal === cur.signal);
}

function trackColour(i) {
  const b = bits[i] / D.bitsScale;
  if (cur.track === "model") return D.bitsColours[Math.min(8, Math.floor(b))];
  if (!ngram) return "transparent";
  const n = ngram[i] / D.bitsScale;
  if (cur.track === "ngram") return D.bitsColours[Math.min(8, Math.floor(n))];
  return D.diffColours[Math.max(0, Math.min(8, Math.round(n - b) + 4))];
}
function track() { for (let i = 0; i < N; i++) spans[i].style.borderBottomColor = trackColour(i); }

function select(layer, unit, signal) {
  cur.layer = Math.max(0, Math.min(M.layers - 1, layer));
  cur.unit = ((unit % M.hidden) + M.hidden) % M.hidden;
  cur.signal = signal || cur.signal;
  paint();
}

// Controls.
for (let l = 0; l < M.layers; l++) $("layer").add(new Option("L" + (l + 1), l));
function unitOptions() {
  const sel = $("unit");
  sel.replaceChildren();
  for (let u = 0; u < M.hidden; u++) sel.add(new Option("u" + u + " · " + signalsOf(cur.layer, u).join(" "), u));
}
$("layer").addEventListener("change", (e) => { cur.layer = +e.target.value; unitOptions(); paint(); });
$("unit").addEventListener("change", (e) => select(cur.layer, +e.target.value));
$("signal").addEventListener("change", (e) => select(cur.layer, cur.unit, e.target.value));
$("track").addEventListener("change", (e) => { cur.track = e.target.value; track(); });
if (!ngram) $("track").querySelectorAll("option:not([value=model])").forEach((o) => { o.disabled = true; });
document.addEventListener("keydown", (e) => {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return;
  const moves = { ArrowRight: [0, 1], ArrowLeft: [0, -1], ArrowDown: [1, 0], ArrowUp: [-1, 0] };
  const m = moves[e.key];
  if (!m) return;
  e.preventDefault();
  const layer = cur.layer + m[0];
  if (layer !== cur.layer && layer >= 0 && layer < M.layers) { cur.layer = layer; unitOptions(); }
  select(cur.layer, cur.unit + m[1]);
});

// Hover: the character's surprise and what the model expected there.
const tip = $("tip");
textEl.addEventListener("mouseover", (e) => {
  const s = e.target.closest(".ch");
  if (!s) return;
  const i = +s.dataset.i, t = stepOf(i), q = levels(cur.layer, cur.unit, cur.signal);
  const head = document.createElement("div");
  const cp = chars[i].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
  head.append(`'${show(chars[i])}' U+${cp} · char ${i} · L${cur.layer + 1} u${cur.unit} ${cur.signal} = ${value(q[t], cur.signal).toFixed(2)}`);
  const b = document.createElement("div");
  b.textContent = `model ${(bits[i] / D.bitsScale).toFixed(2)} bits` + (ngram ? ` · ${M.ngramName} ${(ngram[i] / D.bitsScale).toFixed(2)} bits` : "");
  const label = document.createElement("div");
  label.textContent = "expected here (top " + K + "):";
  const ol = document.createElement("ol");
  ol.className = "top5";
  for (let k = 0; k < K; k++) {
    const li = document.createElement("li"), code = document.createElement("code");
    const tok = D.vocab[topIds[t * K + k]];
    code.textContent = Array.from(tok).map(show).join("");
    li.append(code, " " + (100 * topP[t * K + k] / 255).toFixed(1) + "%");
    if (D.tokenOfChar === null && tok === chars[i]) li.className = "hit";
    ol.appendChild(li);
  }
  tip.replaceChildren(head, b, label, ol);
  tip.hidden = false;
  const r = s.getBoundingClientRect();
  tip.style.left = Math.min(r.left, window.innerWidth - 360) + "px";
  tip.style.top = (r.bottom + 6 + 200 > window.innerHeight ? r.top - tip.offsetHeight - 6 : r.bottom + 6) + "px";
});
textEl.addEventListener("mouseleave", () => { tip.hidden = true; });

// The finder's list.
$("found-hint").textContent = `Chosen on the first half of the text, scored on the second (held out); listed when |score| ≥ ${M.threshold} ` +
  "(2·AUC−1 for yes/no features, rank correlation ρ for counts). The probe is a sparse linear read-out of all units: close to the unit means the feature lives in that unit.";
for (const f of D.found) {
  const li = document.createElement("li");
  Object.assign(li.dataset, { layer: f.layer, unit: f.unit, signal: f.signal });
  li.textContent = `L${f.layer + 1} u${f.unit} ${f.signal} · ${f.feature} · ${scoreText(f, f.held)}` +
    (f.probe === null ? "" : ` (probe ${scoreText({ kind: f.kind }, f.probe)}, ${f.probeUnits} units)`);
  li.addEventListener("click", () => { if (cur.layer !== f.layer) { cur.layer = f.layer; unitOptions(); } select(f.layer, f.unit, f.signal); });
  $(f.best ? "found" : "found-more").appendChild(li);
}
if (!$("found-more").children.length) $("more").hidden = true;
if (!D.found.length) $("found").insertAdjacentHTML("beforeend", "<li>none above the threshold</li>");
for (const n of D.notes) { const li = document.createElement("li"); li.textContent = n; $("notes").appendChild(li); }

// Where the model wins or loses against the n-gram.
if (D.wins.length) {
  $("wins-hint").textContent = `Mean bits per character: ${M.bpc.toFixed(3)} (model) vs ${M.ngramBpc.toFixed(3)} (${M.ngramName}). Saved = n-gram − model; the "n-gram − model" track shows it per character (green: model better).`;
  const rows = [["", "chars", "model", "n-gram", "saved"], ...D.wins.map((w) => [w.kind, w.chars, w.model_bits.toFixed(2), w.ngram_bits.toFixed(2), fmt(w.saved_bits)])];
  rows.forEach((r, j) => { const tr = $("wins").insertRow(); r.forEach((c) => { const td = document.createElement(j ? "td" : "th"); td.textContent = c; tr.appendChild(td); }); });
} else {
  $("wins-hint").textContent = (M.ngramNote || "") + ` Model: ${M.bpc.toFixed(3)} bits per character.`;
}

function el(name, attrs, parent) { const e = document.createElementNS(SVG, name); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (parent) parent.appendChild(e); return e; }
function label(parent, x, y, text, anchor = "middle") { const t = el("text", { x, y, "text-anchor": anchor }, parent); t.textContent = text; return t; }

// Gradient reach: ‖∂L_t/∂h_{t−k}‖ against k, log scale, one line per layer (the top one thick).
if (D.reach) {
  const R = D.reach, w = 520, h = 260, L = 52, B = 34, svg = el("svg", { width: w, height: h, id: "reach-svg" }, $("reach"));
  const all = R.norms.flat().filter((v) => v > 0), lo = Math.log10(Math.min(...all)), hi = Math.log10(Math.max(...all));
  const span = Math.max(hi - lo, 1e-9), x = (k) => L + (w - L - 10) * (k - 1) / Math.max(R.maxK - 1, 1);
  const y = (v) => 10 + (h - B - 10) * (hi - Math.log10(Math.max(v, 10 ** lo))) / span;  // underflowed zeros sit on the axis
  el("line", { x1: L, y1: h - B, x2: w - 10, y2: h - B, stroke: "#999" }, svg);
  el("line", { x1: L, y1: 10, x2: L, y2: h - B, stroke: "#999" }, svg);
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) { el("line", { x1: L, x2: w - 10, y1: y(10 ** e), y2: y(10 ** e), stroke: "#eee" }, svg); label(svg, L - 4, y(10 ** e) + 3, "1e" + e, "end"); }
  for (const k of [1, 64, 128, 192, 256].filter((k) => k <= R.maxK)) label(svg, x(k), h - B + 14, k);
  label(svg, (w + L) / 2, h - 4, "k (steps back)");
  label(svg, 12, (h - B) / 2, "‖∂L/∂h‖").setAttribute("transform", `rotate(-90 12 ${(h - B) / 2})`);
  const colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"];
  R.norms.forEach((row, l) => {
    const top = l === R.norms.length - 1;
    el("polyline", { points: row.map((v, k) => x(k + 1) + "," + y(v)).join(" "), fill: "none", stroke: top ? "#b2182b" : colours[l % 4], "stroke-width": top ? 2 : 1 }, svg);
  });
  const one = R.norms[R.norms.length - 1][0] * 0.01;
  if (Math.log10(one) >= lo) { el("line", { x1: L, x2: w - 10, y1: y(one), y2: y(one), stroke: "#999", "stroke-dasharray": "4 3" }, svg); label(svg, w - 12, y(one) - 3, "1% of k=1", "end"); }
  $("reach-hint").textContent = `‖∂L_t/∂h_{t−k}‖ of the top layer (red; lower layers thin), mean over ${R.windows} positions, log scale. ` +
    `Half of k=1 at k = ${R.half ?? "> " + R.maxK}; below 1% at k = ${R.k1pct ?? "> " + R.maxK}. A SimpleRNN's falls fastest: the vanishing gradient.`;
} else {
  $("reach-hint").textContent = "The text is too short to measure it.";
}

// Gate saturation: one scatter per layer and sigmoid gate.
const gates = Object.keys(D.saturation);
if (!gates.length) $("saturation").textContent = "A SimpleRNN has no gates.";
for (let l = 0; l < M.layers && gates.length; l++) {
  const row = document.createElement("div");
  for (const g of gates) {
    const box = document.createElement("div"), s = 150, P = 30;
    box.className = "sat";
    const svg = el("svg", { width: s + P + 6, height: s + P + 14 }, box);
    label(svg, (s + P) / 2 + P / 2, 11, `L${l + 1} gate ${g}`);
    el("rect", { x: P, y: 14, width: s, height: s, fill: "none", stroke: "#bbb" }, svg);
    label(svg, P + s / 2, s + 14 + 22, "below 0.1 →");
    label(svg, 8, 14 + s / 2, "above 0.9 →").setAttribute("transform", `rotate(-90 8 ${14 + s / 2})`);
    label(svg, P - 4, 22, "1", "end"); label(svg, P - 4, s + 14, "0", "end");
    D.saturation[g][l].forEach(([below, above], u) => {
      const c = el("circle", { cx: P + below * s, cy: 14 + (1 - above) * s, r: 2.6, fill: "#2166ac", "fill-opacity": 0.55, class: "pt" }, svg);
      Object.assign(c.dataset, { layer: l, unit: u, gate: g });
      const t = el("title", {}, c); t.textContent = `L${l + 1} u${u}: ${g} < 0.1 ${(100 * below).toFixed(0)}%, > 0.9 ${(100 * above).toFixed(0)}%`;
      c.addEventListener("click", () => { if (cur.layer !== l) { cur.layer = l; unitOptions(); } select(l, u, g); window.scrollTo({ top: 0 }); });
    });
    row.appendChild(box);
  }
  $("saturation").appendChild(row);
}

$("title").textContent = "rnnlm inspect — " + M.checkpoint;
$("summary").textContent = `${M.cell.toUpperCase()} · ${M.layers} × ${M.hidden} · ${M.tokenizer} tokens · ${N.toLocaleString()} characters of ${M.source} from ${M.start.toLocaleString()} · ` +
  `model ${M.bpc.toFixed(3)} bits/char` + (M.ngramBpc === null ? "" : ` · ${M.ngramName} ${M.ngramBpc.toFixed(3)}`);
unitOptions();
paint();
track();
})();
"""

__all__ = ["PAGE_CSS", "PAGE_JS"]
