"""Options more than one command shares, as decorators (as simonw/llm does), so each has one home."""

from __future__ import annotations

import click

force_option = click.option(
    "--force", is_flag=True,
    help="Replace an existing file at the output path that rnnlm did not write (never the input or a checkpoint).")
"""``--force`` for every command that writes a file the user names; the rule it relaxes is
:func:`rnnlm.fileio.check_output`'s, the one place that decides what an output path may replace."""
