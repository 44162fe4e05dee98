"""What more than one command shares, so each has one home: option decorators (as simonw/llm does), loading the
CHECKPOINT argument, and the copy check's one-line summary."""

from __future__ import annotations

from pathlib import Path

import click

from rnnlm.core.config import CHAT_REPLY_LENGTH, DEVICES, SamplingConfig

SAMPLING_DEFAULTS = SamplingConfig()  # the defaults of every sampling flag

force_option = click.option(
    "--force", is_flag=True,
    help="Replace an existing file at the output path that rnnlm did not write (never the input or a checkpoint).")
"""``--force`` for every command that writes a file the user names; the rule it relaxes is
:func:`rnnlm.core.fileio.check_output`'s, the one place that decides what an output path may replace."""


def device_option(default: str = "auto", note: str = ""):
    """``--device``, its choices from ``rnnlm.core.config.DEVICES`` (one list for every command)."""
    return click.option("--device", type=click.Choice(DEVICES), default=default,
                        help=f"Where to run the model; auto takes CUDA when torch sees a GPU{note}.")


def threads_option(default: int | None = None, note: str = ""):
    """``--threads``: torch's CPU threads.  Training defaults to one per core; a command that steps one character
    at a time passes its own default and says why in ``note``."""
    shown = "one per core" if default is None else str(default)
    return click.option("--threads", type=click.IntRange(min=1), default=default, show_default=False,
                        help=f"CPU threads [default: {shown}].{note}")


def sampling_options(*, chat: bool = False):
    """``--temperature``, ``--top-k``, ``--top-p`` and ``--length`` with the defaults of ``SamplingConfig`` (chat's
    length: ``CHAT_REPLY_LENGTH``); ``chat`` names the slash command that changes each during a session."""
    slash = (lambda command: f" ({command} changes it)") if chat else (lambda command: "")
    options = [
        click.option("--length", type=int, default=CHAT_REPLY_LENGTH if chat else SAMPLING_DEFAULTS.length,
                     help=("Tokens per reply" if chat else "Tokens to generate") + " (characters for char models)."
                     + slash("/length")),
        click.option("--temperature", type=float, default=SAMPLING_DEFAULTS.temperature,
                     help="Softmax temperature; 0 = greedy." + slash("/temp")),
        click.option("--top-k", type=int, default=SAMPLING_DEFAULTS.top_k,
                     help="Sample only from the k most likely tokens (0 = off)." + slash("/topk")),
        click.option("--top-p", type=float, default=SAMPLING_DEFAULTS.top_p,
                     help="Nucleus sampling: the smallest set with this much probability (1 = off)." + slash("/topp")),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def load_for_cli(checkpoint: str | None, latest: bool, device: str = "cpu"):
    """Load a model, saying which run was picked when none was named."""
    from rnnlm.generation.language_model import load

    lm = load(checkpoint, latest=latest, device=device)
    if checkpoint is None:
        click.echo(f"using {lm.path}", err=True)
    return lm


def checkpoint_and_rest(args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """``[CHECKPOINT] ARG...`` where both are positional: the first argument is the CHECKPOINT only if it ends in
    ``.safetensors`` or names a directory (a run directory); otherwise every argument is an ARG and the newest run
    is used (:func:`load_for_cli` says which).  docs/score.md states the rule."""
    if args and (args[0].lower().endswith(".safetensors") or Path(args[0]).is_dir()):
        return args[0], args[1:]
    return None, args


def copy_summary(report) -> str:
    """One line of copy figures (``rnnlm train`` prints it beside the final bpc)."""
    windows = ", ".join(f"{w}-char windows {'–' if share is None else f'{100 * share:.1f}%'}"
                        for w, share in report.windows.items())
    where = f" at {report.longest_at}" if report.longest_at else ""
    return (f"longest verbatim span {report.longest} chars{where}; {windows} found verbatim; "
            f"{len(report.copied_lines)} of {report.lines_checked} lines copied")
