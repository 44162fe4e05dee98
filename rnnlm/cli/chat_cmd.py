"""``rnnlm chat``: a prompt loop in the terminal (readline line editing and history) around :mod:`rnnlm.generation.chat`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rnnlm.core.errors import InputError
from rnnlm.cli.app import cli
from rnnlm.cli.options import device_option, force_option, sampling_options

DEFAULT_HISTORY = "~/.rnnlm_history"


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@sampling_options(chat=True)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed for the whole session: same lines ⇒ same replies (CPU).")
@device_option()
@click.option("--history", type=click.Path(dir_okay=False), default=DEFAULT_HISTORY,
              help="Where the typed lines are kept between sessions (up arrow recalls them); a file rnnlm marks as "
                   "its own, appended to, never cut.")
@force_option
def chat(checkpoint, latest, temperature, top_k, top_p, length, seed, device, history, force) -> None:
    """Write with a model, turn by turn: each line you type continues the text.

    The model reads your line, writes --length characters, and waits; the
    text and the hidden state carry over between turns until /reset.
    Commands: /reset, /temp T, /topk K, /topp P, /length N, /help.
    Ctrl-C stops a reply, Ctrl-D leaves.

    \b
    rnnlm chat                                  # the newest run under ./checkpoints
    rnnlm chat checkpoints/shakespeare-lstm-20261124-101500 --temperature 0.6
    """
    from rnnlm.generation.chat import ChatSession, History
    from rnnlm.cli.options import load_for_cli

    path = Path(history).expanduser()
    # Checked before the model loads; the default file of earlier versions (no mark) is adopted, lines kept.
    kept = History(path, adopt=force or path == Path(DEFAULT_HISTORY).expanduser())
    lm = load_for_cli(checkpoint, latest, device)
    session = ChatSession(lm, temperature=temperature, top_k=top_k, top_p=top_p, length=length, seed=seed)
    typed = sys.stdin.isatty()  # lines from a pipe or a file were not typed: they never enter the history
    if typed:
        _readline(kept)
    interactive = typed and sys.stdout.isatty()
    click.echo(f"{lm.path}: {lm.config.cell} {lm.config.num_layers}×{lm.config.hidden_size}. Type text to continue "
               "it, /help for commands, Ctrl-D to leave.", err=True)
    _loop(session, "> " if interactive else "", kept if typed else None)


def _loop(session, prompt: str, history) -> None:
    while True:
        try:
            line = input(prompt)
        except EOFError:
            click.echo("", err=True)
            return
        except KeyboardInterrupt:  # at the prompt: drop the line, as Python's own prompt does
            click.echo("", err=True)
            continue
        if history is not None and line.strip():
            _remember(history, line)
        try:
            if line.startswith("/") and not line.startswith("//"):
                click.echo(session.command(line), err=True)
                continue
            for chunk in session.turn(line[1:] if line.startswith("//") else line):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        except KeyboardInterrupt:
            sys.stdout.write(session.end_line())
            sys.stdout.flush()
            click.echo("(stopped)", err=True)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)


def _readline(history) -> None:
    """GNU readline (or libedit) line editing, its up arrow primed with the saved lines.

    readline only holds the lines in memory: it never reads or writes the file
    (its own save truncates, and a file without rnnlm's mark is not ours);
    :class:`rnnlm.generation.chat.History` appends each typed line as it is entered.
    """
    try:
        import readline
    except ImportError:
        return
    readline.clear_history()
    for line in history.lines():
        readline.add_history(line)


def _remember(history, line: str) -> None:
    """Append one typed line; a file that cannot be written costs a warning, never the session."""
    try:
        history.append(line)
    except OSError as exc:
        click.echo(f"warning: could not save the history to {history.path}: {exc.strerror or exc}", err=True)
