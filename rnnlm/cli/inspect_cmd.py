"""``rnnlm inspect``: a page showing what each unit tracks, where the model is surprised, how far its gradient reaches."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click

from rnnlm.cli.app import cli, print_result
from rnnlm.cli.options import device_option, force_option, threads_option
from rnnlm.inspection.defaults import DEFAULT_LENGTH, DEFAULT_MAX_K, DEFAULT_THRESHOLD, DEFAULT_WARMUP

_UNIT = re.compile(r"\s*(?:L?(\d+)\s*[:u]\s*)?u?(\d+)\s*", re.IGNORECASE)


def parse_units(ctx, param, value: str | None):
    """``all``, or units as ``L1u87`` / ``1:87`` (layer from 1) or ``87`` (that unit in every layer)."""
    if value is None:
        return None
    if value.strip().lower() == "all":
        return "all"
    units: list[tuple[int | None, int]] = []
    for item in value.split(","):
        match = _UNIT.fullmatch(item)
        if not item.strip() or not match or (match.group(1) is not None and int(match.group(1)) < 1):
            raise click.BadParameter(f"{item.strip()!r} is not a unit; write L1u87, 1:87 or 87 (comma-separated), or all")
        units.append((int(match.group(1)) - 1 if match.group(1) else None, int(match.group(2))))
    return units


class StageLines:
    """Progress on stderr: one line per stage, with its time (plain text, so logs stay readable)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, soft_wrap=True)
        self.stage, self.began = None, time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stage = stage
            self.console.print(f"[dim]{time.perf_counter() - self.began:6.1f} s[/]  {stage}…", highlight=False)


@cli.command("inspect")
@click.argument("checkpoint", required=False)
@click.argument("file", required=False)
@click.option("--out", type=click.Path(dir_okay=False), default="inspect.html", help="Where to write the page.")
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@click.option("--length", type=click.IntRange(min=2), default=DEFAULT_LENGTH, help="Characters to inspect.")
@click.option("--start", type=click.IntRange(min=0), default=None,
              help="Offset of the first inspected character  [default: --warmup characters in, or less for a short text]")
@click.option("--warmup", type=click.IntRange(min=0), default=DEFAULT_WARMUP, help="Characters before the text that warm the state.")
@click.option("--feature", "features", multiple=True, metavar="NAME=REGEX",
              help="Add a yes/no feature: characters inside a match of REGEX (repeatable).")
@click.option("--units", callback=parse_units, default=None, metavar="all|LIST",
              help="Also store c and the gates of these units (L1u87, 1:87, or 87 for every layer), or of all.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_THRESHOLD,
              help="Held-out |score| a unit needs to be listed.")
@click.option("--max-k", type=click.IntRange(min=1), default=DEFAULT_MAX_K, help="Gradient reach: steps back to measure.")
@click.option("--ngram/--no-ngram", default=True, help="The n-gram surprise track (needs the run's corpus).")
@click.option("--npz", type=click.Path(dir_okay=False), default=None, help="Also save every array at full precision.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: rnnlm.inspection.report.INSPECT_SCHEMA).")
@threads_option(1, note=" The recurrence steps one character at a time, where a second thread gained nothing "
                         "here and a core busy with other work made it up to 8× slower.")
@device_option(default="cpu", note=" (the default here is the CPU: one character at a time is a CPU's work)")
@force_option
def inspect_command(checkpoint, file, out, latest, length, start, warmup, features, units, threshold, max_k, ngram, npz,
                    as_json, threads, device, force) -> None:
    """Write one self-contained HTML page showing inside CHECKPOINT as it reads FILE.

    The text is coloured by any unit's hidden state (LSTM: also tanh(c) and the
    gates i f g o; GRU: r z n); units that track a feature of the text (quotes,
    bracket depth, position in line, …) are found automatically and confirmed
    on held-out text; a surprise track compares the model with an n-gram; gate
    saturation and gradient reach show the cell at work. Without FILE the text
    is the run's validation split. The page needs no network.

    \b
    rnnlm inspect checkpoints/run --out page.html
    rnnlm inspect checkpoints/run notes.txt --feature 'stage direction=\\[[^]]*\\]' --units L1u87
    rnnlm inspect --json --npz arrays.npz
    """
    from rnnlm.core.device import set_threads
    from rnnlm.inspection.inspector import inspect
    from rnnlm.cli.options import load_for_cli

    set_threads(threads)
    lm = load_for_cli(checkpoint, latest, device)
    _check_outputs(lm, file, out, npz, force)
    insp = inspect(lm, file, length=length, start=start, warmup=warmup, features=features, threshold=threshold,
                   max_k=max_k, ngram=ngram, progress=StageLines())
    chosen = units if units in (None, "all") else [
        (layer, unit) for want, unit in units for layer in ([want] if want is not None else range(insp.num_layers))]
    page = insp.write_page(out, chosen, force=force)
    record = insp.to_dict() | {"page": str(page)}
    if npz:
        record["npz"] = str(insp.save_npz(npz, force=force))
    size = page.stat().st_size
    click.echo(f"wrote {page} ({size / 1e6:.1f} MB) in {insp.elapsed_s:.1f} s", err=True)
    if as_json:
        click.echo(json.dumps(record, ensure_ascii=False))
        return
    render_summary(record)


def _check_outputs(lm, file, out, npz, force: bool) -> None:
    """Refuse unusable --out / --npz paths before the minutes of work, not after (the writers check again)."""
    from rnnlm.core.errors import InputError
    from rnnlm.core.fileio import NPZ, PAGE, check_output
    from rnnlm.inspection.inspector import read_files

    inputs = read_files(lm, file)  # what the inspection will read: the writers refuse the same files
    page = check_output(out, PAGE, inputs=inputs, force=force)
    if npz:
        arrays = check_output(npz, NPZ, inputs=inputs, force=force, flag="--npz")
        if arrays.resolve() == page.resolve():
            raise InputError(f"--npz {npz} is the --out page; give the arrays their own file")


def _score(kind: str, value: float) -> str:
    return f"AUC {(1 + abs(value)) / 2:.2f}{' (inverse)' if value < 0 else ''}" if kind == "binary" else f"ρ {value:+.2f}"


def render_summary(record: dict) -> None:
    """The top units per feature, the surprise figures and the gradient's reach, on stdout."""
    from rich.table import Table

    from rnnlm.inspection.gradreach import describe_k

    text = record["text"]
    table = Table(title=f"{Path(record['checkpoint']).parent.name}: {record['cell']} {record['layers']}×{record['hidden']} "
                        f"on {text['chars']:,} characters of {text['source']}")
    for col in ("feature", "best units (held-out score)", "probe", "note"):
        table.add_column(col)
    for f in record["features"]:
        units = ", ".join(f"L{u['layer']} u{u['unit']} {u['signal']} {_score(f['kind'], u['heldout_score'])}"
                          for u in f["units"] if u["listed"])
        probe = "" if f["probe"] is None else f"{_score(f['kind'], f['probe']['heldout_score'])} ({f['probe']['units_used']} units)"
        note = f["skipped"] or ("" if units else f"none reaches {record['threshold']:g}")
        table.add_row(f["name"], units, probe, note)
    print_result(table)
    ngram = record["ngram"]
    click.echo(f"bits per character: model {record['bpc']:.3f}" +
               (f", {ngram['name']} {ngram['bpc']:.3f}" if ngram else f" ({record['ngram_note']})"))
    reach = record["gradient_reach"]
    if reach:
        click.echo(f"gradient reach (top layer): half of k=1 at k = {describe_k(reach['half_life'], reach['max_k'])}, "
                   f"below 1% at k = {describe_k(reach['k_below_1pct'], reach['max_k'])}")
