"""An interactive session with a model: the text grows by turns, the hidden state carried along.

What the screen shows is what the model has read: a line you type is fed with
its newline, the model continues for ``length`` characters, and when its reply
stops mid-line a newline is fed too, so your next line starts a line for the
model as it does on the screen.  An empty line asks for more of the same text.

The state is replaced in one assignment after each model step, so a Ctrl-C at
any moment leaves a consistent state (the text up to the last step) and the
conversation goes on.  The terminal loop around this lives in
``rnnlm/cli/chat_cmd.py``; this module is plain Python, testable without one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import torch

from rnnlm.core.errors import InputError
from rnnlm.core.fileio import HISTORY, HISTORY_MARK, atomic_write, atomic_write_text, check_output
from rnnlm.core.config import CHAT_REPLY_LENGTH, SamplingConfig
from rnnlm.generation.sample import encode_prompt, next_ids, step_context
from rnnlm.data.tokenizers.char import StreamDecoder

COMMANDS = {
    "/reset": "forget the text so far (a fresh hidden state)",
    "/temp T": "sampling temperature, e.g. /temp 0.7 (0 = greedy)",
    "/topk K": "sample only from the K most likely tokens (0 = off)",
    "/topp P": "nucleus sampling: the smallest set with probability P (1 = off)",
    "/length N": "tokens (characters for char models) per reply",
    "/help": "this list",
}
HELP = "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items()) + (
    "\n  Any other line continues the text (start it with // to begin with a slash); an empty line asks for more."
    "\n  Ctrl-C stops a reply, Ctrl-D leaves.")
_SETTINGS = {"/temp": ("temperature", float), "/topk": ("top_k", int), "/topp": ("top_p", float),
             "/length": ("length", int)}


class _Head(NamedTuple):
    """The model after the text so far: next-token logits (1, V), recurrent state, and the last character."""

    logits: torch.Tensor
    state: tuple[torch.Tensor, ...]
    last: str


class ChatSession:
    """A growing text and the model's state after it; ``turn(line)`` yields the reply as it is written."""

    def __init__(self, lm, *, temperature: float = SamplingConfig.temperature, top_k: int = SamplingConfig.top_k,
                 top_p: float = SamplingConfig.top_p, length: int = CHAT_REPLY_LENGTH,
                 seed: int | None = None) -> None:
        self.lm = lm
        self.cfg = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, length=length, seed=seed).with_seed()
        self.generator = torch.Generator(device=lm.device).manual_seed(self.cfg.seed)
        self._step_context = step_context(lm.module, lm.device)
        self.reset()

    def reset(self) -> None:
        """Forget the text: the next turn starts from a fresh state."""
        self._head: _Head | None = None
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        """Everything read so far, typed and generated, in order."""
        return "".join(self._parts)

    def command(self, line: str) -> str:
        """Apply a ``/command`` and say what it did; ``InputError`` for an unknown one or a bad value."""
        name, _, arg = line.strip().partition(" ")
        if name == "/help":
            return HELP
        if name == "/reset":
            self.reset()
            return "reset: the next line starts a new text"
        if name not in _SETTINGS:
            raise InputError(f"unknown command {name}; /help lists them")
        field, kind = _SETTINGS[name]
        try:
            value = kind(arg.strip())
        except ValueError:
            raise InputError(f"{name} needs a number, e.g. {name} {getattr(self.cfg, field)}") from None
        self.cfg = dataclasses.replace(self.cfg, **{field: value})  # SamplingConfig checks the range
        return f"{field.replace('_', '-')} {value}"

    def turn(self, line: str) -> Iterator[str]:
        """Feed ``line`` (with its newline; nothing when empty) and yield the reply, ending on a new line.

        Unknown characters in ``line``, or bytes that were not UTF-8, raise ``InputError`` before anything changes.
        """
        check_utf8(line)
        if line:
            self.feed(line + "\n")
        elif self._head is None:
            self.feed("\n")  # an empty first line: start as an empty prompt does, on a fresh line
        decoder = StreamDecoder(self.lm.tokenizer)
        for _ in range(self.cfg.length):
            token = next_ids(self._head.logits, self.cfg, self.generator)  # (1,)
            chunk = decoder.push(token.tolist())
            self._advance(token[:, None], chunk)
            if chunk:
                yield chunk
        tail = decoder.flush()
        if tail:
            self._parts.append(tail)
            yield tail
        end = self.end_line()
        if end:
            yield end

    def end_line(self) -> str:
        """Feed a newline unless the text ends with one (after a reply or a Ctrl-C); returns what to print."""
        if self._head is None or self._head.last == "\n":
            return ""
        self.feed("\n")
        return "\n"

    def feed(self, text: str) -> None:
        """Read ``text`` into the state (one forward call)."""
        ids = torch.as_tensor(encode_prompt(self.lm.tokenizer, text).astype("int64"), device=self.lm.device)
        if ids.numel():
            self._advance(ids[None, :], text)

    @torch.inference_mode()
    def _advance(self, ids: torch.Tensor, text: str) -> None:
        """One model call on (1, L) ids; the new head replaces the old in one assignment (Ctrl-C safe)."""
        head = self._head
        state = head.state if head is not None else self.lm.module.init_state(1, self.lm.device)
        with self._step_context() if ids.shape[1] == 1 else nullcontext():
            logits, state = self.lm.module(ids, state)  # (1, L, V)
        self._head = _Head(logits[:, -1], state, text[-1:] or (head.last if head is not None else ""))
        self._parts.append(text)


_UNDECODED = re.compile("[\udc80-\udcff]")  # how Python's stdin hands over a byte that was not UTF-8


def check_utf8(line: str) -> None:
    """``InputError`` naming the first byte that was not UTF-8 (Python passes such bytes on as lone surrogates)."""
    bad = _UNDECODED.search(line)
    if bad:
        offset = len(line[: bad.start()].encode("utf-8", "surrogateescape"))
        raise InputError(f"the line is not UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02X} at byte {offset}; "
                         "set the terminal's encoding to UTF-8")


class History:
    """The lines typed into ``chat``, kept between sessions in a file rnnlm owns.

    GNU readline's history files carry no mark and its own save truncates them
    to the history length, so a mistyped ``--history`` once cut a user's notes
    (or a checkpoint) to 1,000 lines.  Here the file starts with
    ``HISTORY_MARK``; a file without it is refused (exit 2, before the session)
    unless ``adopt`` (the default ``~/.rnnlm_history`` of earlier versions, or
    ``--force``), and then it is marked on the first typed line with every
    line kept.  Lines are only ever appended: nothing typed, nothing written.
    """

    def __init__(self, path: str | Path, *, adopt: bool = False) -> None:
        self.path = check_output(path, HISTORY, force=adopt, flag="--history")

    def lines(self, last: int = 1000) -> list[str]:
        """The newest ``last`` entries, oldest first (the mark line left out)."""
        if not self.path.exists():
            return []
        entries = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        if entries[:1] == [HISTORY_MARK]:
            entries = entries[1:]
        return entries[-last:]

    def append(self, line: str) -> None:
        """Add one typed line: a new file is created marked, an adopted one marked with its lines kept."""
        entry = line.replace("\n", " ") + "\n"
        if not self.path.exists():
            atomic_write_text(self.path, f"{HISTORY_MARK}\n{entry}")
        elif not HISTORY.is_ours(self.path):
            old = self.path.read_text(encoding="utf-8", errors="surrogateescape")
            sep = "\n" if old and not old.endswith("\n") else ""
            data = f"{HISTORY_MARK}\n{old}{sep}{entry}".encode("utf-8", "surrogateescape")
            atomic_write(self.path, lambda f: f.write(data))
        else:
            with self.path.open("a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(entry)
