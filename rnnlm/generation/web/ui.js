"use strict";
/* The page around the engine: model facts, the controls, and text that appears as it is generated
   (time slices of ~25 ms between which the browser repaints and the Stop button is heard). */
(() => {
  const $ = id => document.getElementById(id);
  const meta = JSON.parse($("rnnlm-meta").textContent);
  const weights = $("rnnlm-weights");
  window.rnnlm = createRnnlm(meta, weights.textContent.trim(), meta.kernel);
  weights.remove();  // the engine holds the decoded weights; the base64 text is no longer needed

  const millions = n => n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
  const facts = [
    `<b>${meta.cell_display}</b>, ${meta.num_layers} × ${meta.hidden_size} units`,
    `<b>${millions(meta.parameters)}</b> parameters (${meta.weights} weights)`,
    `trained on <b></b>`,
    meta.val_bpc === null ? "no validation score" : `validation <b>${meta.val_bpc.toFixed(3)}</b> bpc`,
    `${meta.vocab_size} characters`,
  ];
  $("facts").innerHTML = facts.join(" · ");
  $("facts").querySelectorAll("b")[2].textContent = meta.corpus;  // a file name is text, never markup
  $("facts").title = `${meta.checkpoint}, step ${meta.step}; computed with ${rnnlm.backend}`;

  const status = (text, error = false) => { $("status").textContent = text; $("status").className = error ? "error" : ""; };
  const unescape = s => s.replace(/\\(n|t|\\)/g, (_, c) => ({n: "\n", t: "\t", "\\": "\\"})[c]);
  const number = id => $(id).value.trim() === "" ? NaN : Number($(id).value);
  const read = () => ({
    prompt: $("prompt").value, temperature: number("temperature"), topK: number("top-k"), topP: number("top-p"),
    length: number("length"), seed: $("seed").value.trim() || null, stop: unescape($("stop").value) || null,
  });

  const channel = new MessageChannel();
  let job = null;
  channel.port1.onmessage = () => job && job();
  const later = () => channel.port2.postMessage(null);

  function finish(note) {
    job = null;
    $("generate").disabled = false;
    $("halt").disabled = true;
    if (note) status(note);
  }

  function start() {
    let opts, unknown;
    try {
      opts = rnnlm.options(read());
      unknown = rnnlm.encode(opts.prompt).unknown;
    } catch (e) {
      status(e.message, true);
      return;
    }
    const steps = rnnlm.tokens(opts), out = document.querySelector("#output .generated");
    document.querySelector("#output .prompt").textContent = opts.prompt;
    out.textContent = "";
    $("generate").disabled = true;
    $("halt").disabled = false;
    const begun = performance.now(), note = unknown ? ` · not in the vocabulary, read as unknown: ${unknown}` : "";
    let count = 0;
    const report = () => {
      const rate = count / Math.max((performance.now() - begun) / 1000, 1e-3);
      return `${count} characters · ${Math.round(rate).toLocaleString("en")} characters/s · seed ${opts.seed}${note}`;
    };
    job = () => {
      const until = performance.now() + 25;
      let chunk = "", done = false;
      while (!done && performance.now() < until) {
        for (let i = 0; i < 8; i++) {
          const next = steps.next();
          if (next.done) { done = true; break; }
          chunk += next.value.char;
          count++;
        }
      }
      out.append(chunk);
      if (done) finish(report());
      else { status(report()); later(); }
    };
    status("");
    later();
  }

  $("generate").addEventListener("click", start);
  $("halt").addEventListener("click", () => { if (job) finish(`stopped · ${$("status").textContent}`); });
  $("prompt").addEventListener("keydown", e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!job) start(); } });
  document.querySelector("footer").append(meta.weights === "fp32"
    ? " Temperature 0 writes what rnnlm generate --temperature 0 writes, and a seed gives what --seed gives (torch's random generator, reimplemented here)."
    : " With int8 weights, temperature 0 and a seed follow Python's model closely but not exactly (rounded weights can change a choice); export with --fp32 for the same text.");
})();
