"use strict";
/* The exported model in the browser: torch's forward pass and rnnlm's sampler, including torch's CPU random
   generator, so a seeded draw here equals `rnnlm generate --seed`. Matrix-vector products run in a WebAssembly
   SIMD kernel (rnnlm/generation/web/kernel.py) or, without SIMD, in JS over the same packed layout.
   window.rnnlm is the API the page and its tests use. The cell's own equations are not here: the page carries
   the model's cell's step, cellStep (rnnlm/model/cells/<cell>.js, put in by the exporter), and meta says its
   gate blocks (`gates`) and state (`state`). */
function sigmoid(v) { return 1 / (1 + Math.exp(-v)); }  // for the cells' steps

function createRnnlm(meta, weightsBase64, kernelBase64) {
  const {num_layers: L, hidden_size: H, embed_size: E, vocab_size: V, gates: G} = meta;
  const up4 = n => (n + 3) & ~3;
  const bytesOf = b64 => { const s = atob(b64), out = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); return out; };
  const blob = bytesOf(weightsBase64).buffer;

  // A stored tensor as floats: fp32 as is, int8 rows times their scale (the scales follow the int8 values).
  function tensor(name) {
    const t = meta.tensors[name], n = t.shape.reduce((a, b) => a * b, 1);
    if (t.dtype === "f32") return new Float32Array(blob, t.offset, n);
    const q = new Int8Array(blob, t.offset, n), scale = new Float32Array(blob, t.scale_offset, t.shape[0]);
    const cols = t.shape[1], out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = q[i] * scale[(i / cols) | 0];
    return out;
  }
  const f64 = a => Float64Array.from(a);
  const sum = (a, b) => a.map((v, i) => v + b[i]);

  // The arena: packed matrices and the vectors the kernel reads and writes, as float offsets (16-byte aligned).
  let size = 0;
  const alloc = n => { const at = size; size += up4(n); return at; };
  const layers = [];
  for (let k = 0; k < L; k++) {
    const inSize = k === 0 ? E : H;
    layers.push({inSize, wih: alloc(up4(G * H) * up4(inSize)), whh: alloc(up4(G * H) * up4(H)),
                 gx: alloc(G * H), gh: alloc(G * H), h: alloc(H), x: k === 0 ? alloc(E) : -1,
                 rest: meta.state.slice(1).map(() => new Float32Array(H))});  // the state after h (an LSTM's c)
  }
  const dec = alloc(up4(V) * up4(H)), out = alloc(V);
  let memory = null, kernel = null;
  try {
    const module = new WebAssembly.Module(bytesOf(kernelBase64));
    memory = new WebAssembly.Memory({initial: Math.ceil(4 * size / 65536)});
    kernel = new WebAssembly.Instance(module, {env: {mem: memory}}).exports.matvec;
  } catch (e) {
    memory = null;  // no WebAssembly SIMD here: the JS loop below does the same products
  }
  const F = new Float32Array(memory ? memory.buffer : new ArrayBuffer(4 * size));

  function pack(at, src, rows, cols) {
    const cp = up4(cols);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < cols; j++) F[at + (r >> 2) * 4 * cp + (j >> 2) * 16 + (r & 3) * 4 + (j & 3)] = src[r * cols + j];
  }
  const emb = tensor("embedding.weight");
  layers.forEach((ly, k) => {
    pack(ly.wih, tensor(`rnn.weight_ih_l${k}`), G * H, ly.inSize);
    pack(ly.whh, tensor(`rnn.weight_hh_l${k}`), G * H, H);
    ly.bih = f64(tensor(`rnn.bias_ih_l${k}`));
    ly.bhh = f64(tensor(`rnn.bias_hh_l${k}`));
    ly.b = sum(ly.bih, ly.bhh);
    if (k > 0) ly.x = layers[k - 1].h;
  });
  pack(dec, meta.tied ? emb : tensor("decoder.weight"), V, H);
  const bdec = f64(tensor("decoder.bias"));

  function matvecJS(w, x, y, rows, cols) {
    for (let r = 0; r < rows; r += 4, y += 4) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let j = 0; j < cols; j += 4, w += 16) {
        const x0 = F[x + j], x1 = F[x + j + 1], x2 = F[x + j + 2], x3 = F[x + j + 3];
        s0 += F[w] * x0 + F[w + 1] * x1 + F[w + 2] * x2 + F[w + 3] * x3;
        s1 += F[w + 4] * x0 + F[w + 5] * x1 + F[w + 6] * x2 + F[w + 7] * x3;
        s2 += F[w + 8] * x0 + F[w + 9] * x1 + F[w + 10] * x2 + F[w + 11] * x3;
        s3 += F[w + 12] * x0 + F[w + 13] * x1 + F[w + 14] * x2 + F[w + 15] * x3;
      }
      F[y] = s0; F[y + 1] = s1; F[y + 2] = s2; F[y + 3] = s3;
    }
  }
  let useKernel = kernel !== null;
  const matvec = (w, x, y, rows, cols) => useKernel ? kernel(4 * w, 4 * x, 4 * y, up4(rows), up4(cols)) : matvecJS(w, x, y, up4(rows), up4(cols));

  const logits = new Float64Array(V);

  function reset() {
    for (const ly of layers) { F.fill(0, ly.h, ly.h + H); ly.rest.forEach(s => s.fill(0)); }
  }

  // One time step: feed token `id`, return the next token's logits (a view, overwritten by the next step).
  function step(id) {
    F.set(emb.subarray(id * E, id * E + E), layers[0].x);
    for (const ly of layers) {
      matvec(ly.wih, ly.x, ly.gx, G * H, ly.inSize);
      matvec(ly.whh, ly.h, ly.gh, G * H, H);
      cellStep(F, ly.gx, ly.gh, ly.h, ly.rest, ly.b, ly.bih, ly.bhh, H);
    }
    matvec(dec, layers[L - 1].h, out, V, H);
    for (let v = 0; v < V; v++) logits[v] = F[out + v] + bdec[v];
    return logits;
  }

  function logSumExp(z) {
    let m = -Infinity, s = 0;
    for (const v of z) m = Math.max(m, v);
    for (const v of z) s += Math.exp(v - m);
    return m + Math.log(s);
  }

  // ---- text ↔ ids ----
  const ids = new Map(meta.chars.map((ch, i) => [ch, i]));
  if (meta.unk_id !== null) ids.delete(meta.chars[meta.unk_id]);
  const describe = chars => chars.map(ch => `'${ch}' (U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")})`).join(", ");

  // Ids of `text`; characters outside the vocabulary map to <unk> where the model has one, else throw.
  function encode(text) {
    const chars = Array.from(text), unknown = [...new Set(chars.filter(ch => !ids.has(ch)))];
    if (unknown.length && meta.unk_id === null) throw new Error(`characters not in the vocabulary: ${describe(unknown)}`);
    return {ids: chars.map(ch => ids.has(ch) ? ids.get(ch) : meta.unk_id), unknown: describe(unknown)};
  }
  const decode = list => list.map(i => meta.chars[i]).join("");

  // ---- torch's CPU generator: mt19937 seeded with the seed's low 32 bits; torch.rand = 24 random bits / 2^24 ----
  function mt19937(seed) {
    const mt = new Uint32Array(624);
    mt[0] = Number(BigInt(seed) & 0xffffffffn);
    for (let i = 1; i < 624; i++) { const p = mt[i - 1] ^ (mt[i - 1] >>> 30); mt[i] = Math.imul(1812433253, p) + i; }
    let index = 624;
    return function rand() {
      if (index >= 624) {
        for (let i = 0; i < 624; i++) {
          const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
          mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
        }
        index = 0;
      }
      let y = mt[index++];
      y ^= y >>> 11; y ^= (y << 7) & 0x9d2c5680; y ^= (y << 15) & 0xefc60000; y ^= y >>> 18;
      return ((y >>> 0) & 0xffffff) / 16777216;
    };
  }

  // rnnlm.sample.next_ids for one row, float32 where torch is: greedy at temperature 0 or top-k 1, else
  // temperature, top-k, softmax, top-p (tokens whose more likely mass is ≥ p dropped), and the
  // inverse-CDF draw. `margin`: how near the choice was to going another way (greedy: top-2 logit gap;
  // sampled: distance of the uniform number from the nearest CDF step, relative to the total).
  function pick(z, opts, rand) {
    const n = z.length;
    if (opts.temperature === 0 || opts.topK === 1) {
      let best = 0, second = -Infinity;
      for (let v = 1; v < n; v++) if (z[v] > z[best]) best = v;
      for (let v = 0; v < n; v++) if (v !== best) second = Math.max(second, z[v]);
      return {id: best, margin: z[best] - second};
    }
    const t = Math.fround(opts.temperature), s = new Float64Array(n);
    for (let v = 0; v < n; v++) s[v] = Math.fround(Math.fround(z[v]) / t);
    if (opts.topK > 0 && opts.topK < n) {
      const order = [...s.keys()].sort((a, b) => s[b] - s[a] || a - b);
      for (const v of order.slice(opts.topK)) s[v] = -Infinity;
    }
    const lse = logSumExp(s), p = new Float64Array(n);
    for (let v = 0; v < n; v++) p[v] = Math.fround(Math.exp(s[v] - lse));
    if (opts.topP < 1) {
      const order = [...p.keys()].sort((a, b) => p[b] - p[a] || a - b);
      let acc = 0;
      const keep = order.map(v => { const before = Math.fround(Math.fround(acc += p[v]) - p[v]); return before < opts.topP; });
      order.forEach((v, i) => { if (!keep[i]) p[v] = 0; });
    }
    const cdf = new Float64Array(n);
    let acc = 0;
    for (let v = 0; v < n; v++) cdf[v] = Math.fround(acc += p[v]);
    const total = cdf[n - 1], u = Math.fround(Math.fround(rand()) * total);
    let id = 0;
    while (id < n - 1 && !(cdf[id] > u)) id++;
    let margin = Infinity;
    for (let v = 0; v < n; v++) if (p[v] > 0) margin = Math.min(margin, Math.abs(cdf[v] - u) / total);
    return {id, margin};
  }

  function options(o) {
    const opts = {prompt: "", length: 500, temperature: 0.8, topK: 0, topP: 1, seed: null, stop: null, ...o};
    const bad = (what, v) => { throw new Error(`${what}, got ${v}`); };
    if (!(opts.temperature >= 0 && Number.isFinite(opts.temperature))) bad("temperature must be ≥ 0 (0 = greedy)", opts.temperature);
    if (!(Number.isInteger(opts.topK) && opts.topK >= 0)) bad("top-k must be an integer ≥ 0 (0 = off)", opts.topK);
    if (!(opts.topP > 0 && opts.topP <= 1)) bad("top-p must be in (0, 1]", opts.topP);
    if (!(Number.isInteger(opts.length) && opts.length > 0)) bad("length must be a positive integer", opts.length);
    if (opts.seed === null || opts.seed === "") opts.seed = crypto.getRandomValues(new Uint32Array(1))[0];
    if (!/^\d+$/.test(String(opts.seed))) bad("seed must be an integer ≥ 0", opts.seed);
    opts.seed = String(opts.seed);
    if (opts.stop === "") opts.stop = null;
    return opts;
  }

  // Yield each generated character (with its margin) as `rnnlm generate --no-echo` would draw it.
  function* tokens(o) {
    const opts = options(o), {ids: prompt} = encode(opts.prompt), rand = mt19937(opts.seed);
    reset();
    let z;
    for (const id of prompt.length ? prompt : [meta.bos_id ?? 0]) z = step(id);
    let text = "";
    for (let i = 0; i < opts.length; i++) {
      const {id, margin} = pick(z, opts, rand);
      text += meta.chars[id];
      yield {id, char: meta.chars[id], margin};
      if (opts.stop !== null && text.endsWith(opts.stop)) return;
      if (i + 1 < opts.length) z = step(id);
    }
  }

  function generate(o) {
    const opts = options(o), start = performance.now(), steps = [...tokens(opts)];
    const seconds = (performance.now() - start) / 1000;
    return {text: steps.map(s => s.char).join(""), ids: steps.map(s => s.id), margins: steps.map(s => s.margin),
            seed: opts.seed, seconds, chars_per_s: steps.length / seconds};
  }

  // Next-token probabilities after each of `list` (teacher forcing from a fresh state), float64.
  function probabilities(list) {
    reset();
    return list.map(id => { const z = step(id), lse = logSumExp(z); return Array.from(z, v => Math.exp(v - lse)); });
  }

  // Bits per character of `text`: every character after the first predicted from all before it, state carried.
  function bpc(text) {
    const list = encode(text).ids;
    if (list.length < 2) throw new Error("text too short: need at least 2 characters");
    reset();
    let nats = 0;
    for (let t = 0; t + 1 < list.length; t++) { const z = step(list[t]); nats += logSumExp(z) - z[list[t + 1]]; }
    return nats / (list.length - 1) / Math.LN2;
  }

  return {
    meta, encode, decode, reset, step: id => Array.from(step(id)), probabilities, bpc, tokens, generate, options,
    get backend() { return useKernel ? "wasm-simd" : "js"; },
    setBackend(name) { useKernel = name === "wasm-simd" && kernel !== null; return this.backend; },
  };
}
