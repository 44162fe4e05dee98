"""``rnnlm score``: bits per character of strings, files or stdin, whole or per line (docs/score.md)."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import click

from rnnlm.core.errors import InputError
from rnnlm.cli.app import cli, given_flags, print_result, warn_ignored
from rnnlm.cli.options import checkpoint_and_rest, device_option, load_for_cli, threads_option

SHOWN_LINE = 100  # characters of a line shown in the --lines table (--json keeps all)
LOOKS_LIKE_A_FILE = re.compile(r"\S*/\S*|\S+\.[A-Za-z0-9]{1,5}")


def read_texts(words: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(what the user typed, its kind: file | stdin | string, the text) for each TEXT.

    An existing file is read (UTF-8, byte offsets in errors, as a corpus); ``-`` is stdin; anything else is the
    string itself, with a warning when it looks like a file name that does not exist.
    """
    from rnnlm.data.corpus import read_text

    texts = []
    if sum(word == "-" for word in words) > 1:
        raise InputError("- (stdin) can be given only once")
    for word in words:
        path = Path(word)
        if word == "-":
            data = sys.stdin.buffer.read()
            try:
                texts.append((word, "stdin", data.decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise InputError(f"stdin is not valid UTF-8 at byte offset {exc.start}; convert it to UTF-8") from None
        elif path.is_dir():
            raise InputError(f"TEXT {word} is a directory; give a file, a string, or - for stdin "
                             "(only the first argument can be a run directory)")
        elif path.is_file():
            texts.append((word, "file", read_text([path])))
        else:
            if LOOKS_LIKE_A_FILE.fullmatch(word):
                warnings.warn(f"{word!r} names no file; scored as the string itself", stacklevel=2)
            texts.append((word, "string", word))
    return texts


def label_of(word: str, kind: str) -> str:
    """How a TEXT is named in tables and errors: a file by its path, stdin as ``-``, a string quoted (shortened)."""
    if kind != "string":
        return word
    shown = word if len(word) <= 40 else word[:39] + "…"
    return json.dumps(shown, ensure_ascii=False)


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def ranked(lines, top: int | None) -> list:
    """Lines most surprising first (highest bpc), the first ``top`` of them.

    Blank lines (their one scored character is the newline: where the model expected more text) and lines with
    nothing scored come last, in text order: there is nothing in them to read, and a blank line's bpc is one
    character's surprise, so they would crowd the top of the list.
    """
    def key(line):
        blank = line.bpc is None or not line.text.strip()
        return (blank, 0.0 if blank else -line.bpc, line.line)

    order = sorted(lines, key=key)
    return order[:top] if top else order


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[CHECKPOINT] TEXT...")
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@click.option("--lines", "by_line", is_flag=True,
              help="Also score each line (in context, its newline included), most surprising first; blank lines last.")
@click.option("--top", type=click.IntRange(min=1), default=None, help="With --lines: only the N most surprising lines of each TEXT.")
@click.option("--skip-unknown", is_flag=True,
              help="Leave characters outside the vocabulary out of the score (and say how many) instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per TEXT on stdout.")
@click.option("--per-char", is_flag=True, help="With --json: the bits of every character, as [character, bits] pairs.")
@threads_option(1, note=" One stream steps one character at a time, where a second thread gains nothing: on 2 "
                         "cores busy with other work, 949 characters took 7.7 s with 2 threads and 0.04 s with 1.")
@device_option()
@click.pass_context
def score(ctx, args, latest, by_line, top, skip_unknown, as_json, per_char, threads, device) -> None:
    """Bits per character of each TEXT: a string, a file, or - for stdin.

    Each TEXT is scored as one stream from a fresh state; its first character
    is the context of the first prediction and is not scored (as in eval).
    The first argument is the CHECKPOINT only if it ends in .safetensors or is
    a directory (a run directory; --latest for its latest checkpoint);
    otherwise all are TEXTs and the newest run under ./checkpoints is used.
    A TEXT that names an existing file is read from it.

    \b
    rnnlm score checkpoints/run "To be, or not to be" "To be, or not to bee"
    rnnlm score checkpoints/run play.txt --lines --top 10
    cat notes.txt | rnnlm score - --json
    """
    given = given_flags(ctx)
    if not as_json:
        warn_ignored(given & {"per_char"}, "per-character bits come with --json")
    if not by_line:
        warn_ignored(given & {"top"}, "it limits --lines")
    checkpoint, words = checkpoint_and_rest(args)
    if not words:
        raise InputError("give at least one TEXT to score after the checkpoint: a string, a file, or - for stdin")
    from rnnlm.cli.progress import PhaseLines
    from rnnlm.core.device import set_threads
    from rnnlm.data.tokenizers.char import describe_chars
    from rnnlm.generation.language_model import unknown_message

    texts = read_texts(words)
    set_threads(threads)
    lm = load_for_cli(checkpoint, latest, device)
    if not skip_unknown and lm.tokenizer.unk_id is None:  # every TEXT checked before any is scored
        for word, kind, text in texts:
            if unknown := lm.unknown_chars(text):
                raise InputError(f"{label_of(word, kind)}: {unknown_message(unknown)}")
    phases = PhaseLines()
    results = []
    for word, kind, text in texts:
        label = label_of(word, kind)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*score as <unk>")  # said below, naming the TEXT
                result = lm.score(text, skip_unknown=skip_unknown, per_char=per_char and as_json, lines=by_line,
                                  progress=lambda done, total, label=label: phases(f"scoring {label}", done, total))
        except InputError as exc:
            raise InputError(f"{label}: {exc}") from None
        if result.unk:
            warnings.warn(f"{label}: {plural(result.unk, 'character')} ({len(result.unknown)} distinct) not in the "
                          f"vocabulary scored as <unk>: {describe_chars(result.unknown, 5)}", stacklevel=2)
        if result.skipped:
            warnings.warn(f"{label}: left out {plural(result.skipped, 'character')} not in the vocabulary "
                          f"({len(result.unknown)} distinct): {describe_chars(result.unknown, 5)}", stacklevel=2)
        results.append((word, kind, label, text, result))
    if as_json:
        for word, kind, _, text, result in results:
            record = {"text": word, "source": kind, "checkpoint": str(lm.path), **result.to_dict()}
            if by_line:
                record["lines"] = [line.to_dict() for line in ranked(result.lines, top)]
            if result.per_char is not None:
                record["per_char"] = [[char, None if bits is None else round(bits, 5)]
                                      for char, bits in zip(text, result.per_char)]
            click.echo(json.dumps(record, ensure_ascii=False))
        return
    render(lm, results, by_line, top)


def render(lm, results, by_line: bool, top: int | None) -> None:
    """Per TEXT a table of its lines (with --lines), then one table of every TEXT's figures."""
    from rich.table import Table
    from rich.text import Text

    if by_line:
        for _, _, label, _, result in results:
            shown = "" if top is None or top >= len(result.lines) else f" ({top} of {len(result.lines):,})"
            click.echo(f"{label}: lines, most surprising first{shown}")
            table = Table()
            for col in ("line", "bpc", "chars", "text"):
                table.add_column(col, justify="left" if col == "text" else "right")
            for line in ranked(result.lines, top):
                text = line.text.rstrip("\r")
                cell = (Text(text if len(text) <= SHOWN_LINE else text[: SHOWN_LINE - 1] + "…") if text
                        else Text("(empty line)", style="dim"))
                table.add_row(f"{line.line:,}", "–" if line.bpc is None else f"{line.bpc:.3f}", f"{line.chars:,}",
                              cell)
            print_result(table)
    extra = [(name, attr) for name, attr in (("left out", "skipped"), ("<unk>", "unk"))
             if any(getattr(r, attr) for *_, r in results)]
    table = Table(title=f"{lm.path}")
    for col in ("text", "bpc", "bits", "chars", *(name for name, _ in extra)):
        table.add_column(col, justify="left" if col == "text" else "right")
    for _, _, label, _, result in results:
        table.add_row(Text(label), f"{result.bpc:.4f}", f"{result.bits:,.1f}", f"{result.chars:,}",
                      *(f"{getattr(result, attr):,}" for _, attr in extra))
    print_result(table)
    click.echo("each TEXT is one stream from a fresh state; its first character is context, not scored.")
