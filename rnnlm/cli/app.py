"""The ``rnnlm`` group and what every command shares: parsing, error handling, result rendering.

Errors from the library (``RnnlmError``) become one line on stderr and the
exit code docs/developer/rules.md assigns (2 unusable input, 1 failure while working,
130/143 interrupted); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import math
import os
import re
import sys
import warnings

import click

from rnnlm import __version__
from rnnlm.core.config import DEFAULT_SPLIT
from rnnlm.core.errors import RnnlmError

_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}
YEAR_S = 365 * 86400  # the longest duration accepted


def parse_duration(text: str, forms: str = "a duration like 90, 90s, 5m or 1h") -> float:
    """``90``, ``90s``, ``5m``, ``1.5h``, ``1e3`` → seconds (a bare number is seconds).

    ``forms`` names what the option takes, for text that is no number at all
    (``compare --budget`` takes step counts too).

    At most a year (``YEAR_S``): a time budget becomes a step count and
    a learning-rate schedule over it, and a figure like ``1e9`` (31.7 years) is
    a slip of the keyboard that would leave the learning rate at its peak for
    the whole of any real run.  ``inf`` and ``nan`` are not durations.
    """
    number = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    match = re.fullmatch(rf"\s*({number})\s*(s|m|min|h)?\s*", str(text))
    if not match:
        raise click.BadParameter(f"{text!r} is not {forms}")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or ""]
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} is not a positive duration")
    if seconds > YEAR_S:
        what = f"{seconds / YEAR_S:.3g} years" if math.isfinite(seconds) else "too large a number"
        raise click.BadParameter(f"{text!r} is {what}; a duration is at most 365 days (8760h)")
    return seconds


SPLIT_TEXT = ",".join(f"{f:g}" for f in DEFAULT_SPLIT)  # the --split default as typed


def parse_split(ctx, param, value: str) -> tuple[float, ...]:
    """``--split 0.9,0.05,0.05`` → fractions (their ranges are checked by TrainConfig)."""
    try:
        return tuple(float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of fractions like 0.9,0.05,0.05") from None


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        try:
            return value if isinstance(value, float) else parse_duration(value)
        except click.BadParameter as exc:
            self.fail(str(exc), param, ctx)


def given_flags(ctx: click.Context) -> set[str]:
    """Parameters the user typed (or set through the environment), as opposed to defaults: click's own record.

    The one place that tells them apart (docs/developer/rules.md, "Flags given vs defaults").
    """
    sources = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {name for name in ctx.params if ctx.get_parameter_source(name) in sources}


def warn_ignored(flags: set[str], why: str) -> None:
    """One warning naming every given flag that cannot apply, so nothing is dropped silently."""
    if flags:
        names = ", ".join(f"--{name.replace('_', '-')}" for name in sorted(flags))
        warnings.warn(f"{names} ignored: {why}", stacklevel=2)


def print_result(renderable) -> None:
    """A result table on stdout, never cut: piped to a file, rich would squeeze it into 80 columns."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(renderable)


class DropoutRate(click.ParamType):
    """``auto`` (None: chosen from the passes over the data the budget allows) or a rate in [0, 1)."""

    name = "auto|RATE"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        try:
            rate = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither auto nor a number", param, ctx)
        if not 0 <= rate < 1:
            self.fail(f"{value!r} is not in [0, 1)", param, ctx)
        return rate


DROPOUT_HELP = ("Dropout on embeddings, between layers and before the output; auto rises with the passes over "
                "the corpus the budget allows (0.1 at 10, +0.1 per doubling, up to 0.4).")
WEIGHT_DROP_HELP = ("DropConnect on the recurrent weight matrices (one mask per step; the fused kernel stays); "
                    "auto: a multiple of auto dropout.")
EMBED_DROP_HELP = "Embedding dropout: whole characters dropped per step; auto: a multiple of auto dropout."
STATE_RESET_HELP = ("Share of the carried streams restarted from a zero state at each window, so the model learns to "
                    "start from one (generate, validation and the page do).")


class CleanError(click.ClickException):
    """A library error shown as one line with its own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class Group(click.Group):
    """Turns library errors, interrupts and out-of-memory into clean exits."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            raise _clean(exc, ctx.invoked_subcommand) from exc
        except KeyboardInterrupt as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            raise CleanError("interrupted", 130) from exc


# What to lower when a command runs out of memory, named per command (train's flags mean nothing to eval).
OOM_HINTS = {
    "train": "lower --batch-size, --bptt or --hidden",
    "compare": "lower --batch-size, --bptt or --params",
    "generate": "lower --num-samples, or use --device cpu",
    "eval": "lower --window, or use --device cpu",
}


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's CUDA out-of-memory error, or its CPU allocator's (a plain RuntimeError saying "can't
    allocate memory"); torch is only looked up when already imported."""
    torch = sys.modules.get("torch")
    return (isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError))
            or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)))


def _clean(exc: BaseException, command: str | None = None) -> click.ClickException:
    if isinstance(exc, RnnlmError):
        return CleanError(str(exc), exc.exit_code)
    if _out_of_memory(exc):
        hint = OOM_HINTS.get(command or "", "use a smaller model or input")
        return CleanError(f"out of memory: {hint}", 1)
    if isinstance(exc, BrokenPipeError):
        return CleanError("output closed early", 1)
    return CleanError(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="rnnlm")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Character-level recurrent language models: train, sample, evaluate, compare.

    \b
    rnnlm corpus                                   # build corpora/shakespeare.txt
    rnnlm train corpora/shakespeare.txt --max-time 5m
    rnnlm generate --prompt "ROMEO:"
    """
    ctx.ensure_object(dict)["debug"] = debug


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings (e.g. prompt characters mapped to <unk>) as one plain stderr line."""
    click.echo(f"warning: {message}", err=True)


def main() -> None:
    """The ``rnnlm`` entry point; under torchrun a rank leaves without the interpreter's teardown.

    Its work is done and saved by then (the process group destroyed, files
    closed), but gloo's threads can still abort the exiting process ("terminate
    called without an active exception", SIGABRT), and torchrun then reports the
    whole run as failed: a two-rank resume test did so on a quiet machine.
    """
    warnings.showwarning = _show_warning
    try:
        cli(prog_name="rnnlm")
    except SystemExit as exc:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            raise
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
