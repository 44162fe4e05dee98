"""The ``rnnlm`` command line: options in, Python API calls, results rendered.

The group lives in :mod:`rnnlm.cli.app`; each command is a module of its own
that registers itself on it, imported here, so ``rnnlm.cli`` is the whole
command line and nothing imports back up into this file.
"""

from rnnlm.cli import chat_cmd, compare_cmd, export_cmd, generate_cmd, info_cmd, inspect_cmd, score_cmd, serve_cmd, train_cmd  # noqa: F401
from rnnlm.cli.app import cli, main, parse_duration

__all__ = ["cli", "main", "parse_duration"]
