"""``rnnlm compare``: SimpleRNN vs LSTM vs GRU on one corpus under one budget."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rnnlm.core.config import CELLS, RUNS_ROOT, TOKENIZERS, TrainConfig
from rnnlm.cli.app import DROPOUT_HELP, SPLIT_TEXT, DropoutRate, cli, parse_duration, parse_split, print_result


def parse_budget(text: str) -> dict:
    """``5m`` / ``90s`` / ``300`` (time) or ``2000steps`` → TrainConfig budget fields.

    Every refusal is a ``click.BadParameter`` about the text as typed, so the
    user reads ``--budget 0steps`` and not the TrainConfig field it would fill.
    """
    steps = re.fullmatch(r"\s*(\d+)\s*steps?\s*", text)
    if steps:
        if int(steps.group(1)) < 1:
            raise click.BadParameter(f"{text!r} is not a positive step count like 2000steps")
        return {"max_time_s": None, "max_steps": int(steps.group(1)), "epochs": None}
    return {"max_time_s": parse_duration(text, "a duration (5m) or a step count (2000steps)"), "max_steps": None,
            "epochs": None}


def _csv(kind):
    """A comma-separated option: ``kind`` is ``int`` or a tuple of allowed names."""

    def convert(ctx, param, value):
        try:
            items = [(str if isinstance(kind, tuple) else kind)(v.strip()) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list") from None
        if isinstance(kind, tuple) and (bad := [v for v in items if v not in kind]):
            raise click.BadParameter(f"unknown value {bad[0]!r}; choose from {', '.join(kind)}")
        if kind is int and any(v < 1 for v in items):
            raise click.BadParameter("layer counts must be positive")
        if not items:
            raise click.BadParameter("give at least one value")
        return items
    return convert


def _budget(ctx, param, value):
    """click's callback form of :func:`parse_budget`."""
    return parse_budget(value)


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@click.option("--cells", callback=_csv(CELLS), default="rnn,lstm,gru", help="Cells to compare.")
@click.option("--layers", callback=_csv(int), default="1,2", help="Depths to compare.")
@click.option("--budget", callback=_budget, default="3m", help="Per-configuration budget: DURATION or Nsteps.")
@click.option("--match", type=click.Choice(["params", "hidden"]), default="params", help="Equal parameter counts (width solved per cell) or equal widths.")
@click.option("--params", "params_target", type=click.IntRange(min=1000), default=1_000_000, help="Parameter budget with --match params.")
@click.option("--hidden", type=click.IntRange(min=1), default=512, help="Width with --match hidden.")
@click.option("--embed", type=click.IntRange(min=1), default=64, help="Embedding size (all runs).")
@click.option("--dropout", type=DropoutRate(), default="auto", help=DROPOUT_HELP)
@click.option("--bptt", type=click.IntRange(min=1), default=TrainConfig.bptt, help="Truncated-BPTT window T (all runs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainConfig.batch_size, help="Parallel streams B (all runs).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, help="Seeds per configuration (table shows mean ± std).")
@click.option("--split", callback=parse_split, default=SPLIT_TEXT, help="train,val,test fractions (test is required).")
@click.option("--tokenizers", callback=_csv(TOKENIZERS), default="char", help="Tokenizers to compare (char, bpe, unigram).")
@click.option("--vocab-size", type=click.IntRange(min=1), default=None, help="Subword vocabulary size (with bpe/unigram).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", help="Training precision.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: checkpoints/compare-<corpus>].")
def compare(corpus, cells, layers, budget, match, params_target, hidden, embed, dropout, bptt, batch_size, seeds, split,
            tokenizers, vocab_size, precision, out) -> None:
    """Train each cell × depth under the same budget and split, then tabulate and plot.

    \b
    rnnlm compare corpora/shakespeare.txt --budget 5m
    rnnlm compare notes.txt --cells lstm,gru --layers 2 --budget 2000steps --seeds 3
    rnnlm compare book.txt --cells lstm --layers 1 --tokenizers char,bpe --vocab-size 1000
    Re-running the same command skips configurations that already finished.
    """
    from rnnlm.experiments.compare import run_comparison
    from rnnlm.cli.progress import TrainProgress

    paths = [Path(p) for p in corpus]
    out = Path(out) if out else RUNS_ROOT / f"compare-{paths[0].stem}"
    base = TrainConfig(split=split, precision=precision, vocab_size=vocab_size or 0, bptt=bptt, batch_size=batch_size)
    console = Console(stderr=True)
    results = run_comparison(
        paths, out, cells=cells, layers=layers, match=match, hidden=hidden, params_target=params_target,
        seeds=seeds, budget=budget, base=base, embed=embed, dropout=dropout, tokenizers=tokenizers,
        callbacks_for=lambda name: (console.rule(name), [TrainProgress(console)])[1],
        on_skip=lambda name: console.print(f"{name}: done earlier, skipped"),
    )
    render_results(results)
    console.print(f"results: {out / 'results.json'}, plots: {out / 'curves.png'}, {out / 'gradient-reach.png'}")


def _reach_k(group: dict, runs: list[dict]) -> str:
    """Per seed, the k where the top layer's ‖∂L_t/∂h_{t−k}‖ falls below 1% of k=1 ("> 256" where it never does)."""
    key = (group["tokenizer"], group["cell"], group["layers"])
    reaches = [r.get("gradient_reach") for r in runs if (r["tokenizer"], r["cell"], r["layers"]) == key]
    if not reaches or None in reaches:
        return "—"  # results from before compare measured it, or a validation text too short
    return " / ".join(f"> {r['max_k']}" if r["k_below_1pct"] is None else str(r["k_below_1pct"]) for r in reaches)


def render_results(results: dict) -> None:
    """The comparison table on stdout (a result, not a diagnostic)."""
    seeds = max(g["seeds"] for g in results["groups"])
    pm = (lambda g, k, f: f"{g[k + '_mean']:{f}} ± {g[k + '_std']:{f}}") if seeds > 1 else (lambda g, k, f: f"{g[k + '_mean']:{f}}")
    budget = results["budget"]
    spent = f"{budget['max_time_s']:.0f} s" if budget["max_time_s"] else f"{budget['max_steps']} steps"
    table = Table(title=f"{', '.join(results['corpus'])} — budget {spent} each, match {results['match']}"
                        + (f" (~{results['params_target']:,} params)" if results["params_target"] else ""))
    kinds = {g["tokenizer"] for g in results["groups"]}
    tok_col = kinds != {"char"}
    columns = ["cell", "layers", "hidden", "params", "train time", "chars/s", "best val bpc", "test bpc", "test ppl",
               "beats 5-gram", "grad < 1% at k"]
    if tok_col:
        columns.insert(1, "tokens")
    for col in columns:
        table.add_column(col, justify="left" if col in ("cell", "tokens") else "right")
    for g in sorted(results["groups"], key=lambda g: g["test_bpc_mean"]):
        cells = [g["cell"], str(g["layers"]), str(g["hidden"]), f"{g['params']:,}", f"{g['train_time_s_mean']:.0f} s",
                 f"{g['chars_per_s_mean']:,.0f}", pm(g, "best_val_bpc", ".3f"), pm(g, "test_bpc", ".3f"),
                 f"{g['test_perplexity_mean']:.2f}",
                 "never" if g["beats_ngram_min"] is None else f"{g['beats_ngram_min']:.1f} min", _reach_k(g, results["runs"])]
        table.add_row(*(cells[:1] + [g["tokenizer"]] + cells[1:] if tok_col else cells))
    blank = [""] * (len(columns) - 6)
    for b in results["baselines"]:
        table.add_row(b["name"], *blank, f"{b['val_bpc']:.3f}", f"{b['test_bpc']:.3f}", f"{b['test_perplexity']:.2f}", "",
                      "", style="dim")
    print_result(table)
