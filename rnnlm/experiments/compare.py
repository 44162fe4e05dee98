"""``rnnlm compare``: several cells and depths under one budget, on one split, side by side.

Every configuration trains with the same seed, data split, batches and budget
in its own run directory; a ``done.json`` marker there lets an interrupted
comparison resume without retraining finished runs.  Results: a table (rendered
by the CLI), ``results.json`` (schema below, checked by a test),
``curves.png`` (validation bpc against time and against steps) and
``gradient-reach.png`` (how far back each run's gradient reaches, :mod:`rnnlm.inspection.gradreach`).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnlm.core.config import CELLS, ModelConfig, TrainConfig
from rnnlm.core.errors import InputError
from rnnlm.core.fileio import atomic_write, atomic_write_text
from rnnlm.model.params import model_params

REACH_CHARS = 200_000  # validation characters the gradient-reach windows are spread over

# The documented shape of results.json (a subset of JSON Schema; tests/test_compare.py validates against it).
_NUM = {"type": "number"}
_CURVE = {"type": "array", "description": "validation points [step, seconds, val bpc, characters seen]",
          "items": {"type": "array"}}
RESULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["corpus", "budget", "match", "params_target", "runs", "groups", "baselines", "created"],
    "properties": {
        "corpus": {"type": "array", "description": "corpus file names"},
        "budget": {"type": "object", "required": ["max_time_s", "max_steps"], "description": "per configuration"},
        "match": {"type": "string", "enum": ["params", "hidden"]},
        "params_target": {"type": ["integer", "null"], "description": "with match=params"},
        "created": {"type": "string", "description": "local time, ISO 8601"},
        "runs": {"type": "array", "description": "one per configuration and seed", "items": {
            "type": "object",
            "required": ["name", "cell", "layers", "hidden", "params", "tokenizer", "vocab_size", "seed", "train_time_s",
                         "tokens_per_s", "chars_per_s", "steps", "best_val_bpc", "test_bpc", "test_perplexity",
                         "test_nats_per_token", "curve", "beats_ngram_min", "model_config", "train_config", "run_dir"],
            "properties": {
                "name": {"type": "string"}, "cell": {"type": "string", "enum": list(CELLS)},
                "layers": {"type": "integer"}, "hidden": {"type": "integer"}, "params": {"type": "integer"},
                "tokenizer": {"type": "string", "enum": ["char", "bpe", "unigram"]}, "vocab_size": {"type": "integer"},
                "seed": {"type": "integer"}, "train_time_s": _NUM, "tokens_per_s": _NUM,
                "chars_per_s": {"type": "number", "description": "training characters per second (a subword token spells several)"},
                "steps": {"type": "integer"}, "best_val_bpc": _NUM, "test_bpc": _NUM,
                "test_perplexity": {"type": "number", "description": "per token"}, "test_nats_per_token": _NUM,
                "curve": _CURVE,
                "beats_ngram_min": {"type": ["number", "null"],
                                    "description": "minutes until val bpc ≤ the 5-gram's val bpc; null: never"},
                "model_config": {"type": "object"}, "train_config": {"type": "object"},
                "run_dir": {"type": "string", "description": "its checkpoints: rnnlm generate RUN_DIR"},
                "gradient_reach": {"type": ["object", "null"],
                                   "description": "‖∂L_t/∂h_{t−k}‖ on the validation text (rnnlm.inspection.gradreach): max_k, "
                                                  "windows, norms (per layer, bottom first, k = 1…max_k), k_below_1pct "
                                                  "and half_life (top layer; null: not within max_k). Absent in files "
                                                  "written before compare measured it; null: validation text too short"}}}},
        "groups": {"type": "array", "description": "runs of one configuration, mean ± std over seeds", "items": {
            "type": "object",
            "required": ["cell", "layers", "hidden", "params", "tokenizer", "seeds", "best_val_bpc_mean",
                         "best_val_bpc_std", "test_bpc_mean", "test_bpc_std", "test_perplexity_mean",
                         "chars_per_s_mean", "train_time_s_mean", "beats_ngram_min"]}},
        "baselines": {"type": "array", "description": "character n-grams fitted on the training split", "items": {
            "type": "object", "required": ["name", "val_bpc", "test_bpc", "test_perplexity"],
            "properties": {"name": {"type": "string"}, "val_bpc": _NUM, "test_bpc": _NUM,
                           "test_perplexity": {"type": "number", "description": "per character"}}}},
    },
}


def width_for_params(cell: str, layers: int, target: int, vocab: int, embed: int) -> int:
    """The hidden width whose parameter count is closest to ``target`` (counts grow monotonically in width)."""
    lo, hi = 1, 8192
    while lo < hi:
        mid = (lo + hi) // 2
        if model_params(cell, layers, mid, vocab, embed) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [w for w in (lo - 1, lo) if w >= 1]
    return min(candidates, key=lambda w: abs(model_params(cell, layers, w, vocab, embed) - target))


def plan(cells: Sequence[str], layers: Sequence[int], match: str, hidden: int, params_target: int | None,
         vocabs: dict[str, int], embed: int) -> list[dict[str, Any]]:
    """One entry per (tokenizer, cell, layers): its width and parameter count.

    ``vocabs`` maps each tokenizer kind to its vocabulary size: with ``match
    params`` a subword model's bigger embedding and output layer come out of
    its recurrent width, so every row has the same parameter budget.
    """
    rows = []
    for kind, vocab in vocabs.items():
        for cell in cells:
            for depth in layers:
                width = width_for_params(cell, depth, params_target, vocab, embed) if match == "params" else hidden
                rows.append({"cell": cell, "layers": depth, "hidden": width, "tokenizer": kind, "vocab_size": vocab,
                             "params": model_params(cell, depth, width, vocab, embed)})
    return rows


def run_name(row: dict[str, Any], seed: int) -> str:
    """``lstm-L2-h384-s0``; subword runs add their tokenizer: ``lstm-L1-h300-bpe1000-s0``."""
    tok = "" if row["tokenizer"] == "char" else f"-{row['tokenizer']}{row['vocab_size']}"
    return f"{row['cell']}-L{row['layers']}-h{row['hidden']}{tok}-s{seed}"


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def group_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over seeds for each (tokenizer, cell, layers)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["tokenizer"], run["cell"], run["layers"]), []).append(run)
    out = []
    for (tokenizer, cell, layers), members in groups.items():
        row = {"cell": cell, "layers": layers, "hidden": members[0]["hidden"], "params": members[0]["params"],
               "tokenizer": tokenizer, "seeds": len(members)}
        for key in ("best_val_bpc", "test_bpc", "test_perplexity", "chars_per_s", "train_time_s"):
            mean, std = _mean_std([m[key] for m in members])
            row[f"{key}_mean"], row[f"{key}_std"] = mean, std
        passed = [m["beats_ngram_min"] for m in members]
        row["beats_ngram_min"] = None if None in passed else max(passed)  # by then every seed had passed it
        out.append(row)
    return out


def run_comparison(
    corpus: Sequence[Path], out: Path, *, cells: Sequence[str], layers: Sequence[int], match: str,
    hidden: int, params_target: int | None, seeds: int, budget: dict[str, Any], base: TrainConfig,
    embed: int, dropout: float | None, tokenizers: Sequence[str] = ("char",),
    callbacks_for: Callable[[str], list] = lambda name: [], on_skip: Callable[[str], None] = lambda name: None,
) -> dict[str, Any]:
    """Train every configuration not yet done, evaluate on the test split, and write results.json.

    ``tokenizers`` adds a tokenizer axis (``char``, ``bpe``, ``unigram``; the
    subword vocabulary size is ``base.vocab_size``).  Every run sees the same
    characters in each split, and test bpc counts characters, so rows rank
    fairly across tokenizers; the n-gram baselines are character models.
    """
    from rnnlm.training.run import train
    from rnnlm.data.splits import encode_splits, scope_segments, val_scope
    from rnnlm.evaluation.ngram import kneser_ney, unigram
    from rnnlm.inspection.gradreach import GradientReach, measure_run, plot_reach
    from rnnlm.generation.language_model import load

    if len(base.split) < 3:
        raise InputError("compare evaluates on a test split: give --split with three fractions")
    if any(kind != "char" for kind in tokenizers) and base.vocab_size <= 0:
        raise InputError("subword tokenizers need --vocab-size N (e.g. 1000)")
    config = base.replace(**budget)
    chars, splits, info = encode_splits(list(corpus), config.replace(tokenizer="char"), None, out / ".cache")
    vocabs = {kind: chars.vocab_size if kind == "char" else config.vocab_size for kind in tokenizers}
    reach_text = chars.decode(np.asarray(splits[1][:REACH_CHARS]))  # gradient reach: windows spread over it
    runs = []
    for row in plan(cells, layers, match, hidden, params_target, vocabs, embed):
        for seed in range(seeds):
            name = run_name(row, seed)
            run_dir = out / name
            marker = run_dir / "done.json"
            if marker.exists():
                on_skip(name)
                record = json.loads(marker.read_text())
                if "gradient_reach" not in record:  # finished before compare measured it
                    record["gradient_reach"] = measure_run(load(run_dir, device=config.device), reach_text)
                    atomic_write_text(marker, json.dumps(record) + "\n")
                runs.append(record)
                continue
            model = ModelConfig(cell=row["cell"], num_layers=row["layers"], hidden_size=row["hidden"],
                                embed_size=embed, dropout=dropout)
            summary = train(list(corpus), model=model, config=config.replace(seed=seed, tokenizer=row["tokenizer"]),
                            out=run_dir, callbacks=callbacks_for(name), cache_dir=out / ".cache")
            lm = load(run_dir, device=config.device)  # evaluate where it trained
            test = lm.evaluate_split("test")
            meta = lm.meta
            seconds = max(summary["elapsed_s"], 1e-9)  # the trainer counts both: a subword token spells several chars
            record = {**row, "vocab_size": lm.tokenizer.vocab_size, "name": name, "seed": seed,
                      "train_time_s": summary["elapsed_s"],
                      "tokens_per_s": summary["tokens_seen"] / seconds, "chars_per_s": summary["chars_seen"] / seconds,
                      "steps": summary["steps"], "best_val_bpc": summary["best_val_bpc"],
                      "test_bpc": test.bpc, "test_perplexity": test.perplexity,
                      "test_nats_per_token": test.nats_per_token, "curve": meta["metrics"]["curve"],
                      "model_config": meta["config"]["model"], "train_config": meta["config"]["train"],
                      "run_dir": str(run_dir), "gradient_reach": measure_run(lm, reach_text)}
            atomic_write_text(marker, json.dumps(record) + "\n")  # last: its presence means the run is done
            runs.append(record)
    train_ids, val_ids, test_ids = splits
    # Validation scores of the runs are on the fixed sample of a big split (data.val_scope): so are the baselines'.
    segments = scope_segments(val_ids, chars, val_scope(len(val_ids)))
    val_ids = np.concatenate(segments) if segments is not None else val_ids
    baselines = []
    for fit in (unigram, lambda tr, ev, v: kneser_ney(tr, ev, v, order=5)):
        val, test = fit(train_ids, val_ids, chars.vocab_size), fit(train_ids, test_ids, chars.vocab_size)
        baselines.append({"name": test.name, "val_bpc": val.bpc, "test_bpc": test.bpc, "test_perplexity": test.perplexity})
    for run in runs:  # when its validation curve first went below the 5-gram on the same validation text
        run["beats_ngram_min"] = next((c[1] / 60 for c in run["curve"] if c[2] <= baselines[-1]["val_bpc"]), None)
    results = {"corpus": info.to_dict()["names"], "budget": {k: config.to_dict()[k] for k in ("max_time_s", "max_steps")},
               "match": match, "params_target": params_target if match == "params" else None,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": runs, "groups": group_runs(runs),
               "baselines": baselines}
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    plot_curves(results, out / "curves.png")
    reaches = {r["name"]: GradientReach.from_dict(r["gradient_reach"]) for r in runs if r.get("gradient_reach")}
    if reaches:
        plot_reach(reaches, out / "gradient-reach.png", title=f"{', '.join(results['corpus'])}: gradient reach")
    return results


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Validation bpc vs minutes and vs steps, one labelled line per run, baselines dashed."""
    from rnnlm.training.runlog import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110, sharey=True)
    for run in results["runs"]:
        curve = run["curve"]
        label = run["name"]
        axes[0].plot([c[1] / 60 for c in curve], [c[2] for c in curve], "o-", ms=2.5, label=label)
        axes[1].plot([c[0] for c in curve], [c[2] for c in curve], "o-", ms=2.5, label=label)
    for base in results["baselines"]:
        for ax in axes:
            ax.axhline(base["val_bpc"], ls="--", lw=1, color="gray")
        axes[1].annotate(f"{base['name']} (validation)", (0, base["val_bpc"]), fontsize=8, color="gray",
                         xytext=(2, 2), textcoords="offset points")
    finals = [c[2] for r in results["runs"] for c in r["curve"][len(r["curve"]) // 3 :] if math.isfinite(c[2])]
    if finals:
        axes[0].set_ylim(min(finals) - 0.1, max(finals) + 0.4)
    axes[0].set_xlabel("training time (minutes)")
    axes[1].set_xlabel("steps")
    axes[0].set_ylabel("validation bits per character")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{', '.join(results['corpus'])}: match {results['match']}")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


__all__ = ["RESULTS_SCHEMA", "run_comparison", "plan", "run_name", "width_for_params", "group_runs"]
