"""Per-character features of raw text: what a unit might be tracking.

Each feature gives one value per character, describing the text *up to and
including* that character, because that is what the hidden state after reading
it can know: "inside quotes" is true from an opening quote through the
character before the closing one, bracket depth counts the brackets opened and
not yet closed.  Yes/no features are ``binary`` (scored by 2·AUROC−1),
counts are ``count`` (scored by rank correlation); see :mod:`rnnlm.inspection.finder`.

Users add their own yes/no features as ``NAME=REGEX``: a character is
positive when it lies inside a match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers.char import codepoints

OPEN_BRACKETS, CLOSE_BRACKETS = "([{", ")]}"
QUOTES_OPEN, QUOTES_CLOSE = "\u201c", "\u201d"  # “ ”; the straight " toggles
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ -]{0,39}")


@dataclass(frozen=True)
class Feature:
    """One per-character feature: its values (float64, one per character) and how it is scored."""

    name: str
    kind: str  # "binary" or "count"
    values: np.ndarray
    description: str


def inside_quotes(text: str) -> np.ndarray:
    """1 from an opening quote up to (not including) its closing quote; a straight ``"`` opens or closes."""
    out = np.zeros(len(text))
    inside = False
    for i, ch in enumerate(text):
        if ch == '"':
            inside = not inside
            out[i] = float(inside)
        elif ch == QUOTES_OPEN:
            inside = True
            out[i] = 1.0
        elif ch == QUOTES_CLOSE:
            inside = False
        else:
            out[i] = float(inside)
    return out


def bracket_depth(text: str) -> np.ndarray:
    """Brackets ``( [ {`` opened and not yet closed after each character (never below 0)."""
    points = codepoints(text).astype(np.int64)
    step = np.zeros(len(text))
    for ch in OPEN_BRACKETS:
        step[points == ord(ch)] = 1.0
    for ch in CLOSE_BRACKETS:
        step[points == ord(ch)] = -1.0
    depth = np.zeros(len(text))
    level = 0.0
    for i, s in enumerate(step):  # a stray closer must not push the depth negative for the rest of the text
        level = max(level + s, 0.0)
        depth[i] = level
    return depth


def _line_positions(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(position in line, characters to the end of the line) for each character; a newline ends its line."""
    n = len(text)
    idx = np.arange(n)
    newline = codepoints(text) == ord("\n")
    starts = np.zeros(n, dtype=np.int64)
    after = np.flatnonzero(newline) + 1
    starts[after[after < n]] = after[after < n]
    starts = np.maximum.accumulate(starts)
    ends = np.full(n, n, dtype=np.int64)  # index of the line's newline (or the text's end)
    nl = np.flatnonzero(newline)
    pos = np.searchsorted(nl, idx)
    has = pos < len(nl)
    ends[has] = nl[pos[has]]
    return (idx - starts).astype(np.float64), (ends - idx).astype(np.float64)


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch in "'_"


def position_in_word(text: str) -> np.ndarray:
    """1 for a word's first character, 2 for its second, …; 0 outside words (letters, digits, ' and _)."""
    out = np.zeros(len(text))
    run = 0
    for i, ch in enumerate(text):
        run = run + 1 if _is_word(ch) else 0
        out[i] = run
    return out


def _mask(text: str, test) -> np.ndarray:
    return np.fromiter((test(ch) for ch in text), dtype=np.float64, count=len(text))


def builtin_features(text: str) -> list[Feature]:
    """The features every inspection scores (the 2015 paper's quote, bracket and line-length cells among them)."""
    pos, to_end = _line_positions(text)
    return [
        Feature("inside quotes", "binary", inside_quotes(text), 'between an opening and a closing quote (" “ ”)'),
        Feature("bracket depth", "count", bracket_depth(text), "brackets ( [ { open after this character"),
        Feature("position in line", "count", pos, "characters before this one on its line"),
        Feature("chars to end of line", "count", to_end, "characters until the line's newline"),
        Feature("position in word", "count", position_in_word(text), "1 for a word's first character, 0 outside words"),
        Feature("start of line", "binary", (pos == 0).astype(np.float64), "the first character of a line"),
        Feature("upper case", "binary", _mask(text, str.isupper), "an upper-case letter"),
        Feature("digit", "binary", _mask(text, str.isdigit), "a digit"),
        Feature("punctuation", "binary", _mask(text, lambda ch: unicodedata.category(ch).startswith("P")),
                "a punctuation mark (Unicode category P)"),
    ]


def parse_feature(spec: str) -> tuple[str, re.Pattern]:
    """``NAME=REGEX`` → (name, compiled pattern); a bad spec is an InputError that says what to fix."""
    name, sep, pattern = spec.partition("=")
    name = name.strip()
    if not sep or not pattern:
        raise InputError(f"--feature {spec!r}: give NAME=REGEX, e.g. --feature 'stage direction=\\[[^]]*\\]'")
    if not _NAME.fullmatch(name):
        raise InputError(f"--feature {spec!r}: the name must start with a letter and use letters, digits, _ - or spaces")
    try:
        return name, re.compile(pattern)
    except re.error as exc:
        raise InputError(f"--feature {name}: {pattern!r} is not a valid regular expression ({exc})") from None


def regex_feature(text: str, name: str, pattern: re.Pattern) -> Feature:
    """1 for every character inside a match of ``pattern`` (empty matches mark nothing)."""
    delta = np.zeros(len(text) + 1)
    for match in pattern.finditer(text):
        delta[match.start()] += 1
        delta[match.end()] -= 1
    inside = (np.cumsum(delta)[:-1] > 0).astype(np.float64)
    return Feature(name, "binary", inside, f"inside a match of /{pattern.pattern}/")


def all_features(text: str, extra: list[tuple[str, re.Pattern]] = ()) -> list[Feature]:
    """The built-in features plus the user's regex features (a name may replace a built-in one)."""
    features = {f.name: f for f in builtin_features(text)}
    for name, pattern in extra:
        features[name] = regex_feature(text, name, pattern)
    return list(features.values())


__all__ = ["Feature", "builtin_features", "all_features", "parse_feature", "regex_feature", "inside_quotes",
           "bracket_depth", "position_in_word"]
