"""``rnnlm export``: a checkpoint as one self-contained web page that writes text in the browser."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rnnlm.cli.app import cli
from rnnlm.cli.options import force_option, load_for_cli

RUN_FILES = ("best.safetensors", "latest.safetensors")


def default_out(checkpoint: Path) -> Path:
    """``<run name>.html`` in the current directory (the file's stem when it is not one of a run's checkpoints)."""
    in_run = checkpoint.name in RUN_FILES or checkpoint.name.startswith("step-")
    return Path(f"{checkpoint.parent.name if in_run else checkpoint.stem}.html")


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@click.option("--format", "fmt", type=click.Choice(["web"]), default="web", help="web: one HTML file, weights and code inline.")
@click.option("--out", default=None, metavar="FILE", help="File to write  [default: <run name>.html]")
@click.option("--fp32", is_flag=True, help="Exact float32 weights (about 4× the size of the default int8 ones).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (file, bytes, parameters, model).")
@force_option
def export(checkpoint, latest, fmt, out, fp32, as_json, force) -> None:
    """Write CHECKPOINT as one HTML page that runs the model in any browser, offline.

    The page has the weights and code inline and fetches nothing; type a prompt
    and watch it write, with temperature, top-k, top-p, length, seed and stop.
    Character models only. Weights are int8 with one scale per row (about 1.35
    bytes per parameter) unless --fp32.

    \b
    rnnlm export --out shakespeare.html
    rnnlm export checkpoints/run --fp32 --json
    """
    from rnnlm.generation.export import export_web

    lm = load_for_cli(checkpoint, latest)
    summary = export_web(lm, Path(out) if out else default_out(lm.path), fp32=fp32, force=force)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    # The weights' bytes per parameter apart from the page's fixed part: over the whole file, the fixed part reads
    # as a cost per parameter (a 41,665-parameter 1×64 LSTM: 2.01 bytes each, of which its int8 weights take 1.47).
    click.echo(f"wrote {summary['out']}: {summary['bytes'] / 1e6:.2f} MB = {summary['parameters']:,} parameters × "
               f"{summary['weights_bytes_per_parameter']:.2f} bytes ({summary['weights']} weights) + "
               f"{summary['fixed_bytes'] / 1e3:.1f} kB of page code and metadata; "
               f"{lm.config.cell} {lm.config.num_layers}×{lm.config.hidden_size}")
