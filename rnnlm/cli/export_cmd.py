"""``rnnlm export``: a checkpoint as one self-contained web page that writes text in the browser, or as an ONNX model
(with its vocabulary beside it) that ONNX Runtime runs in any language."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rnnlm.cli.app import cli
from rnnlm.cli.options import force_option, load_for_cli

RUN_FILES = ("best.safetensors", "latest.safetensors")


SUFFIXES = {"web": ".html", "onnx": ".onnx"}


def default_out(checkpoint: Path, fmt: str = "web") -> Path:
    """``<run name>.html`` (``.onnx``) in the current directory (the file's stem when it is not one of a run's
    checkpoints)."""
    in_run = checkpoint.name in RUN_FILES or checkpoint.name.startswith("step-")
    return Path(f"{checkpoint.parent.name if in_run else checkpoint.stem}{SUFFIXES[fmt]}")


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@click.option("--format", "fmt", type=click.Choice(list(SUFFIXES)), default="web",
              help="web: one HTML file, weights and code inline. onnx: an ONNX model (the recurrent state an explicit "
                   "input and output) and its vocabulary and config, in the model's metadata and in FILE.json.")
@click.option("--out", default=None, metavar="FILE", help="File to write  [default: <run name>.html or .onnx]")
@click.option("--fp32", is_flag=True, help="Exact float32 weights (about 4× the size of the default int8 ones); "
                                           "an ONNX model's weights are always float32.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (file, bytes, parameters, model).")
@force_option
def export(checkpoint, latest, fmt, out, fp32, as_json, force) -> None:
    """Write CHECKPOINT as one HTML page that runs the model in any browser, offline, or as an ONNX model.

    The page has the weights and code inline and fetches nothing; type a prompt
    and watch it write, with temperature, top-k, top-p, length, seed and stop.
    Character models only. Weights are int8 with one scale per row (about 1.35
    bytes per parameter) unless --fp32.

    --format onnx writes the model for ONNX Runtime (Python, C++, C#, Java, JS,
    ...): ids and the recurrent state in, logits and the next state out, batch
    and sequence dynamic; the vocabulary and config go in the model's metadata
    and in FILE.json beside it. Needs the onnx extra.

    \b
    rnnlm export --out shakespeare.html
    rnnlm export checkpoints/run --fp32 --json
    rnnlm export checkpoints/run --format onnx --out shakespeare.onnx
    """
    lm = load_for_cli(checkpoint, latest)
    out = Path(out) if out else default_out(lm.path, fmt)
    if fmt == "onnx":
        from rnnlm.generation.onnx_export import export_onnx

        summary = export_onnx(lm, out, force=force)
        if as_json:
            click.echo(json.dumps(summary, ensure_ascii=False))
            return
        click.echo(f"wrote {summary['out']}: {summary['bytes'] / 1e6:.2f} MB, {summary['parameters']:,} float32 "
                   f"parameters, opset {summary['opset']} (inputs {', '.join(summary['inputs'])}; outputs "
                   f"{', '.join(summary['outputs'])}); vocabulary and config in its metadata and in "
                   f"{summary['json']}; {lm.config.cell} {lm.config.num_layers}×{lm.config.hidden_size}")
        return
    from rnnlm.generation.export import export_web

    summary = export_web(lm, out, fp32=fp32, force=force)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    # The weights' bytes per parameter apart from the page's fixed part: over the whole file, the fixed part reads
    # as a cost per parameter (a 41,665-parameter 1×64 LSTM: 2.01 bytes each, of which its int8 weights take 1.47).
    click.echo(f"wrote {summary['out']}: {summary['bytes'] / 1e6:.2f} MB = {summary['parameters']:,} parameters × "
               f"{summary['weights_bytes_per_parameter']:.2f} bytes ({summary['weights']} weights) + "
               f"{summary['fixed_bytes'] / 1e3:.1f} kB of page code and metadata; "
               f"{lm.config.cell} {lm.config.num_layers}×{lm.config.hidden_size}")
