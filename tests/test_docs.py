"""The docs show only flags that exist: every ``--flag`` in a command line a page shows (``rnnlm CMD ...`` in a
code block or an inline code span of README.md or docs/) is one of that command's options in its ``--help``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnlm.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
COMMAND = re.compile(r"(?:^|[\s`$(])rnnlm\s+([a-z]+)((?:[ \t]+[^\s`|;&#)]+)*)")


def _command_lines(text: str) -> list[tuple[str, str]]:
    """(command, the rest of its line) for each ``rnnlm CMD`` in code blocks and inline code spans."""
    spans = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
    found = []
    for span in spans:
        for line in span.splitlines():
            for match in COMMAND.finditer(line):
                found.append((match.group(1), match.group(2)))
    return found


def _help_flags(command: str) -> set[str]:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    return set(re.findall(r"--[a-z0-9][a-z0-9-]*", result.output)) | {"--help", "--debug"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_flag_a_page_shows_is_in_its_commands_help(page):
    commands = set(cli.commands)
    shown = [(cmd, rest) for cmd, rest in _command_lines(page.read_text(encoding="utf-8")) if cmd in commands]
    missing = []
    for command, rest in shown:
        try:
            words = shlex.split(rest)
        except ValueError:
            words = rest.split()
        flags = {w.split("=")[0] for w in words if re.fullmatch(r"--[a-z0-9][a-z0-9-]*(=.*)?", w)}
        missing += [f"rnnlm {command} {flag}" for flag in sorted(flags - _help_flags(command))]
    assert not missing, f"{page.name} shows flags its commands lack: {missing}"


def test_the_check_sees_flags_and_can_fail():
    lines = _command_lines("```\nrnnlm generate --prompt 'x' --no-such-flag\n```\nand `rnnlm train a.txt --max-time 5m`")
    assert ("generate", " --prompt 'x' --no-such-flag") in lines and ("train", " a.txt --max-time 5m") in lines
    assert "--no-such-flag" not in _help_flags("generate") and "--prompt" in _help_flags("generate")
