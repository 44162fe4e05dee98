"""``rnnlm eval`` and ``rnnlm summary``: numbers about a model."""

from __future__ import annotations

import json

import click
from rich.table import Table

from rnnlm.core.config import CELLS
from rnnlm.cli.app import cli, given_flags, print_result, warn_ignored
from rnnlm.cli.options import device_option, load_for_cli


@cli.command("eval")
@click.argument("checkpoint", required=False)
@click.argument("file", required=False)
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@click.option("--split", "which", type=click.Choice(["val", "test"]), default="val", help="Without FILE: which split of the run's corpus.")
@click.option("--window", type=click.IntRange(min=1), default=None, help="Also score fresh-state windows of N tokens (nanoGPT's way).")
@click.option("--streams", type=click.IntRange(min=1), default=None,
              help="Cut the text into N contiguous streams, each from a fresh state [default: the run's, 32]; "
                   "1 scores FILE as one stream, as rnnlm score does.")
@click.option("--full", is_flag=True, help="Score the whole validation split, not the fixed sample training validated on (big corpora).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@device_option()
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", help="Score the int8 model that generate --quantize int8 samples from (CPU).")
@click.pass_context
def evaluate(ctx, checkpoint, file, latest, which, window, streams, full, as_json, device, quantize) -> None:
    """Loss (nats), perplexity and bits per character of CHECKPOINT on FILE or on its own split.

    \b
    rnnlm eval checkpoints/run                 # validation split of the run's corpus (as training scored it)
    rnnlm eval checkpoints/run --full          # all of it, where training scored a fixed sample
    rnnlm eval checkpoints/run held-out.txt --json
    rnnlm eval checkpoints/run held-out.txt --streams 1   # one stream, as rnnlm score held-out.txt
    """
    from rnnlm.cli.progress import PhaseLines

    lm = load_for_cli(checkpoint, latest, "cpu" if quantize == "int8" and device == "auto" else device)
    if quantize == "int8":
        lm.quantize_int8()
    lines = PhaseLines()
    scope = lm.meta.get("val_scope") or {}
    sampled = which == "val" and not full and not file and scope.get("kind") == "sample"
    label = f"{which} split" + (f" (fixed sample: {scope['chars']:,} characters; --full for all)" if sampled else "")
    if sampled:
        warn_ignored(given_flags(ctx) & {"streams"}, "the fixed validation sample is scored as its own segments "
                     "(--full scores the whole split)")

    def score(window_size):
        report = (lambda done, total: lines(f"scoring the {label}", done, total))
        if file:
            return lm.evaluate(file=file, window=window_size, streams=streams)
        return lm.evaluate_split(which, window=window_size, full=full, streams=streams, progress=report)

    result = score(None)
    windowed = score(window) if window else None
    record = {**result.to_dict(), "checkpoint": str(lm.path), "file": file or label}
    if not sampled:
        record["streams"] = lm.train_config.eval_streams if streams is None else streams
    if windowed is not None:
        record["window"] = {"size": window, **windowed.to_dict()}
    if as_json:
        click.echo(json.dumps(record))
        return
    table = Table(title=f"{lm.path} on {record['file']}")
    for col in ("", "nats/token", "perplexity", "bpc", "tokens", "chars"):
        table.add_column(col, justify="right")
    rows = [("streamed", result)] + ([(f"window {window}", windowed)] if windowed else [])
    for label, r in rows:
        table.add_row(label, f"{r.nats_per_token:.4f}", f"{r.perplexity:.3f}", f"{r.bpc:.4f}", f"{r.tokens:,}", f"{r.chars:,}")
    print_result(table)


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--cell", type=click.Choice(CELLS), default=None, help="Without a checkpoint: the cell.")
@click.option("--layers", type=click.IntRange(min=1), default=1, help="Without a checkpoint: stacked layers.")
@click.option("--hidden", type=click.IntRange(min=1), default=None, help="Without a checkpoint: units per layer.")
@click.option("--input-size", type=click.IntRange(min=1), default=None, help="Without a checkpoint: input features.")
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
def summary(checkpoint, cell, layers, hidden, input_size, latest) -> None:
    """Keras-like layer table with parameter counts (textbook single bias vs torch's two).

    \b
    rnnlm summary checkpoints/run
    rnnlm summary --cell rnn --hidden 3 --input-size 10      # 42 textbook, 45 torch
    """
    from rnnlm.model.params import layer_table, render_rows, totals

    if cell is not None:
        if hidden is None or input_size is None:
            raise click.UsageError("--cell needs --hidden and --input-size")
        rows = layer_table(cell, layers, hidden, input_size)
        title = f"{layers}× {cell} ({hidden} units) on {input_size} inputs"
    else:
        cfg = load_for_cli(checkpoint, latest).config
        rows = layer_table(cfg.cell, cfg.num_layers, cfg.hidden_size, cfg.embed_size, cfg.vocab_size, cfg.embed_size)
        title = f"{cfg.num_layers}× {cfg.cell} {cfg.hidden_size}, vocab {cfg.vocab_size}"
    table = Table(title=title)
    for col in ("layer", "output shape", "params (textbook)", "params (torch)"):
        table.add_column(col, justify="left" if col in ("layer", "output shape") else "right")
    for row in render_rows(rows):
        table.add_row(*row)
    textbook, torch_total = totals(rows)
    table.add_row("total", "", f"{textbook:,}", f"{torch_total:,}", style="bold")
    print_result(table)
    click.echo("textbook counts one bias per gate (Keras); torch keeps two (b_ih and b_hh), "
               f"so it has {torch_total - textbook:,} more.")
