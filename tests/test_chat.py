"""``rnnlm chat``: the session keeps its state between turns, and the real prompt loop in a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest
import torch

from rnnlm.generation.chat import ChatSession, History
from rnnlm.core.errors import InputError
from rnnlm.core.fileio import HISTORY_MARK
from rnnlm.generation.language_model import load


@pytest.fixture
def lm(tiny_run):
    return load(tiny_run)


def test_the_state_carries_the_whole_text_between_turns(lm):
    session = ChatSession(lm, temperature=1.0, length=25, seed=0)
    first = "".join(session.turn("All:"))
    second = "".join(session.turn("First Citizen:"))
    assert session.text == "All:\n" + first + "First Citizen:\n" + second and session.text.endswith("\n")
    ids = torch.as_tensor(lm.tokenizer.encode(session.text).astype("int64"))[None]  # (1, L)
    with torch.no_grad():
        logits, _ = lm.module(ids, lm.module.init_state(1))
    assert torch.allclose(session._head.logits, logits[:, -1], atol=1e-5)  # stepping vs one call: a tolerance


def test_reset_starts_a_new_text(lm):
    session = ChatSession(lm, temperature=0, length=30)
    list(session.turn("Speak, speak."))
    assert session.command("/reset").startswith("reset") and session.text == ""
    fresh = ChatSession(lm, temperature=0, length=30)
    assert "".join(session.turn("All:")) == "".join(fresh.turn("All:"))


def test_commands_change_the_settings_or_say_what_is_wrong(lm):
    session = ChatSession(lm)
    assert session.command("/temp 0.7") == "temperature 0.7" and session.cfg.temperature == 0.7
    assert session.command("/topk 20") == "top-k 20" and session.cfg.top_k == 20
    assert session.command("/length 12") == "length 12" and len("".join(session.turn("All:")).rstrip("\n")) <= 12
    assert "/reset" in session.command("/help")
    for line, message in [("/topk -1", "top-k must be"), ("/temp warm", "needs a number"), ("/nope", "unknown command")]:
        with pytest.raises(InputError, match=message):
            session.command(line)
    before = session.text
    with pytest.raises(InputError, match="not in the vocabulary"):
        list(session.turn("Zebra ∑"))
    assert session.text == before


class Terminal:
    """``rnnlm chat`` on a pseudo-terminal: what a person types, and everything the screen shows."""

    def __init__(self, *args: str, env: dict) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: its controlling terminal is the pty, so ^C is a real SIGINT
            os.execve(sys.executable, [sys.executable, "-m", "rnnlm", "chat", *args], env)
        self.screen = b""

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def expect(self, text: bytes, timeout: float = 60.0) -> None:
        """Read until ``text`` appears after everything already expected."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on the screen: {self.screen[-800:]!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # EIO: the child has gone
                    data = b""
                assert data, f"chat exited before {text!r}: {self.screen[-800:]!r}"
                self.screen += data
        self.screen = self.screen[self.screen.index(text) + len(text) :]

    def expect_output(self, count: int, timeout: float = 60.0) -> None:
        """Read until ``count`` bytes have appeared since the last expected text."""
        deadline = time.monotonic() + timeout
        while len(self.screen) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {self.screen!r} on the screen"
            if select.select([self.fd], [], [], left)[0]:
                self.screen += os.read(self.fd, 65536)

    def exit_code(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    os.read(self.fd, 65536)
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        raise AssertionError("chat did not exit")


def test_the_prompt_loop_in_a_terminal(tiny_run, tmp_path):
    history = tmp_path / "history"
    env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm"}
    term = Terminal(str(tiny_run), "--length", "40", "--seed", "0", "--device", "cpu", "--history", str(history), env=env)
    term.expect(b"/help for commands")
    for keys, shown in [(b"All:", b"All:\r\n"),  # echoed; a reply of 40 characters and the prompt follow
                        (b"/temp 0.5", b"temperature 0.5"),
                        (b"\x1b[A", b"temperature 0.5"),  # up arrow: readline recalls the last line
                        (b"/length 1000000", b"length 1000000"),
                        (b"First", b"First\r\n")]:
        term.expect(b"> ")  # readline has the terminal: keys typed before it might reach the tty driver instead
        term.type(keys + b"\r")
        term.expect(shown)
    term.expect_output(40)  # the reply is streaming, so readline has given the terminal back (^C is a signal again)
    term.type(b"\x03")  # Ctrl-C stops it, the loop goes on
    term.expect(b"(stopped)")
    for keys, shown in [(b"/topk 3", b"top-k 3"), (b"/reset", b"reset: the next line starts a new text")]:
        term.expect(b"> ")
        term.type(keys + b"\r")
        term.expect(shown)
    term.expect(b"> ")
    term.type(b"\x04")  # Ctrl-D at an empty prompt leaves
    assert term.exit_code() == 0
    assert history.read_text().splitlines()[:3] == [HISTORY_MARK, "All:", "/temp 0.5"]


def _chat(run, *args: str, stdin: bytes = b"All:\n", home=None) -> subprocess.CompletedProcess:
    """``rnnlm chat`` with standard input from a pipe: nothing is typed."""
    env = {**os.environ, "HOME": str(home)} if home else None
    return subprocess.run([sys.executable, "-m", "rnnlm", "chat", str(run), "--length", "10", "--device", "cpu", *args],
                          input=stdin, capture_output=True, env=env, timeout=120)


def test_a_history_file_rnnlm_did_not_write_is_refused_and_kept(tiny_run, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("".join(f"note {i}\n" for i in range(1, 2501)))
    before = notes.read_bytes()
    result = _chat(tiny_run, "--history", str(notes))
    assert result.returncode == 2, result.stderr
    assert str(notes) in result.stderr.decode() and b"Traceback" not in result.stderr
    assert notes.read_bytes() == before  # 2,500 lines, not the last 1,000


def test_a_checkpoint_named_as_history_is_refused_even_with_force(tiny_run, tmp_path):
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes((tiny_run / "best.safetensors").read_bytes())
    before = copy.read_bytes()
    for extra in ([], ["--force"]):
        result = _chat(tiny_run, "--history", str(copy), *extra)
        assert result.returncode == 2 and b"checkpoint" in result.stderr, result.stderr
    assert copy.read_bytes() == before
    load(copy)  # still a checkpoint


def test_piped_lines_never_touch_the_history(tiny_run, tmp_path):
    fresh, marked = tmp_path / "fresh", tmp_path / "marked"
    marked.write_text(f"{HISTORY_MARK}\nold line\n")
    for path in (fresh, marked):
        result = _chat(tiny_run, "--history", str(path))
        assert result.returncode == 0, result.stderr
    assert not fresh.exists()
    assert marked.read_text() == f"{HISTORY_MARK}\nold line\n"


def test_input_that_is_not_utf8_is_named_as_such(tiny_run):
    result = _chat(tiny_run, "--history", "unused", stdin=b"All:\xe9 more\n")
    assert result.returncode == 0  # the session goes on after a bad line
    assert b"not UTF-8: byte 0xE9 at byte 4" in result.stderr, result.stderr
    assert b"U+DC" not in result.stderr


def test_history_appends_and_adopts_without_losing_lines(tmp_path):
    path = tmp_path / "h"
    history = History(path)
    assert history.lines() == [] and not path.exists()
    history.append("first")
    history.append("second")
    assert path.read_text() == f"{HISTORY_MARK}\nfirst\nsecond\n"
    assert History(path).lines() == ["first", "second"]
    assert History(path).lines(last=1) == ["second"]
    old = tmp_path / "readline-history"
    old.write_text("".join(f"line {i}\n" for i in range(1500)))
    with pytest.raises(InputError, match="not a chat history"):
        History(old)
    adopted = History(old, adopt=True)
    assert len(adopted.lines(last=10**6)) == 1500 and old.read_text().startswith("line 0")  # untouched until typed
    adopted.append("new")
    lines = old.read_text().splitlines()
    assert lines[0] == HISTORY_MARK and len(lines) == 1502 and lines[-1] == "new"


def test_the_default_history_is_adopted_and_recalled_in_a_terminal(tiny_run, tmp_path):
    default = tmp_path / ".rnnlm_history"
    default.write_text("Before:\n")  # written by readline in an earlier version: no mark
    env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm"}
    term = Terminal(str(tiny_run), "--length", "5", "--seed", "0", "--device", "cpu", env=env)
    term.expect(b"/help for commands")
    term.expect(b"> ")
    term.type(b"\x1b[A\r")  # up arrow: the earlier version's line comes back
    term.expect(b"Before:\r\n")
    term.expect(b"> ")
    term.type(b"All:\r")
    term.expect(b"All:\r\n")
    term.expect(b"> ")
    term.type(b"\x04")
    assert term.exit_code() == 0
    assert default.read_text().splitlines() == [HISTORY_MARK, "Before:", "Before:", "All:"]
