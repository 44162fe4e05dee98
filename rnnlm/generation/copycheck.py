"""Copy check: how much of a generated text appears verbatim in the training text.

"Are my samples just my training text?" is the most asked question about
small character models.  This answers it exactly instead of by eye: for every
position of the generated text, the longest span starting there that occurs
in the training split (its *matching statistics*), from which follow the
longest copied span and where it sits, the share of 20- and 40-character
windows found verbatim, and the generated lines that exist verbatim.

The index is a suffix array of the training split's UTF-8 bytes, built once by
libdivsufsort (``pydivsufsort``) and cached beside the id cache as two ``.npy``
files that are memory-mapped, keyed by the files' sha256 and the split — never
by mtime or name.  Runs whose corpora hold the same bytes under other names
thus share one index, so places take their file names from the run asking,
never from the cache.  Bytes rather than token ids make one index serve char
and subword models alike, and since UTF-8 is self-synchronising a match that
starts on a character of the query starts on a character of the corpus.  Measured
(BENCHMARKS.md, "Copy index"): the index of a 100 MB corpus's training split
builds in 11 s at a peak of 5.5 bytes per byte, linear from 10 to 100 MB;
numpy prefix doubling took 58 s instead of 1.1 s on 9 MB, and its rounds
(one per doubling of the longest repeat, 27 on repeated text) cost ~20 s and
4.3 GB each at 100 MB.

Searching binary-searches the array for every query position at once
(vectorised over positions), comparing from the prefix the current bracket
already shares (Manber & Myers' lcp trick), so a 2,000-character check of a
100 MB index takes 30–100 ms, and opening the cached index (hashing the
corpus, memory-mapping the arrays) about 0.1 s.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlm.data.corpus import iter_text, same_corpus, scan_corpus
from rnnlm.data.splits import split_ids
from rnnlm.core.errors import InputError, RnnlmError
from rnnlm.core.fileio import atomic_write, atomic_write_text

Progress = Callable[[str, int, int], None]  # (phase, done, total); total 0 = a phase with no measure
FORMAT = 1
BLOCK = 1 << 16  # bytes per entry of the char/line tables that turn a byte offset into a line and column
WINDOWS = (20, 40)
MIN_LINE_CHARS = 20  # non-space characters a generated line needs before a verbatim copy of it counts
CHEAP_TRAIN_CHARS = 20_000_000  # below this `rnnlm train` builds the index itself at the end of a run


@dataclass(frozen=True)
class Place:
    """Where a span starts in the training text: file, line in that file, character offset in the split."""

    file: str
    line: int
    offset: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class CopyReport:
    """Copy figures of one generated text (the prompt excluded); ``windows`` maps width → share found."""

    chars: int
    longest: int
    longest_text: str
    longest_start: int
    longest_at: Place | None
    windows: dict[int, float | None]
    lines_checked: int
    copied_lines: list[tuple[str, Place]] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The ``copy`` object of ``generate --json``."""
        return {"chars": self.chars,
                "longest": {"chars": self.longest, "text": self.longest_text, "start": self.longest_start,
                            "found_at": _place_dict(self.longest_at)},
                **{f"windows_{w}": None if share is None else round(share, 4) for w, share in self.windows.items()},
                "lines_checked": self.lines_checked,
                "copied_lines": [{"text": t, "found_at": _place_dict(p)} for t, p in self.copied_lines]}


def _place_dict(place: Place | None) -> dict | None:
    return None if place is None else {"file": place.file, "line": place.line, "offset": place.offset}


@dataclass(frozen=True)
class IndexPlan:
    """Which text an index covers and where it is cached, known after hashing the files (no index read yet)."""

    paths: tuple[Path, ...]
    cache_dir: Path | None
    key: str
    train_chars: int
    sizes: tuple[int, ...]
    sha256: tuple[str, ...]

    def _file(self, suffix: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"copy-{self.key}{suffix}"

    @property
    def cached(self) -> bool:
        meta = self._file(".json")
        return meta is not None and meta.exists()


def cache_dir_for(checkpoint: Path) -> Path | None:
    """The id cache a checkpoint's run used: ``checkpoints/.cache`` for ``checkpoints/RUN/best.safetensors``;
    None where it cannot be written (a read-only copy of a run: the index is then built in memory)."""
    run = checkpoint.parent
    cache = (run.parent if (run / "config.json").exists() else run) / ".cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return cache if os.access(cache, os.W_OK) else None


def plan_for_run(meta: dict, checkpoint: Path, corpus: Sequence[str | Path] | None = None) -> IndexPlan:
    """The training text of a checkpoint: its recorded corpus files (unchanged), or ``corpus`` when they moved.

    The run's split fractions apply either way.  Recorded files that are gone or
    changed are an ``InputError`` naming ``--corpus``; given files that differ
    from the recorded ones are checked anyway (the user chose them).
    """
    recorded = meta.get("corpus", {})
    fractions = tuple(meta.get("split", {}).get("fractions") or meta["config"]["train"]["split"])
    if corpus:
        return plan_index([Path(p) for p in corpus], fractions, cache_dir_for(checkpoint))
    paths = [Path(p) for p in recorded.get("paths", [])]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        names = ", ".join(missing or recorded.get("names", [])) or "its corpus"
        raise InputError(f"cannot find the training text ({names}); pass it with --corpus FILE")
    plan = plan_index(paths, fractions, cache_dir_for(checkpoint))
    if "sha256" in recorded and not same_corpus(recorded, plan.sha256):
        raise InputError("the corpus files changed since training; pass the training text with --corpus FILE "
                         "(or the edited files, to check against them anyway)")
    return plan


def plan_index(paths: Sequence[Path], fractions: Sequence[float], cache_dir: Path | None) -> IndexPlan:
    """Hash and scan the files (the scan is cached) and name the index of their training split."""
    info = scan_corpus(paths, cache_dir=cache_dir)
    # The same bounds training used: split_ids on a zero-copy stand-in as long as the corpus.
    train_chars = len(split_ids(np.broadcast_to(np.uint8(0), (info.num_chars,)), tuple(fractions))[0])
    blob = json.dumps([FORMAT, list(info.sha256), list(info.sizes), train_chars]).encode()
    return IndexPlan(tuple(Path(p) for p in info.paths), cache_dir,
                     hashlib.sha256(blob).hexdigest()[:24], train_chars, info.sizes, info.sha256)


class CopyIndex:
    """A suffix array over the training split's bytes, with what it takes to report places in it.

    Places name the files of ``plan``, the run asking: a cached index is
    shared by every corpus with the same bytes, whatever its files are called.
    """

    def __init__(self, text: np.ndarray, sa: np.ndarray, meta: dict, plan: IndexPlan) -> None:
        self.text, self.sa, self.meta = np.asarray(text), np.asarray(sa), meta
        self.files = [p.name for p in plan.paths]
        self.file_starts = np.asarray(meta["file_starts"], dtype=np.int64)
        self.block_chars = np.asarray(meta["block_chars"], dtype=np.int64)
        self.block_lines = np.asarray(meta["block_lines"], dtype=np.int64)

    @classmethod
    def open(cls, plan: IndexPlan, progress: Progress | None = None) -> CopyIndex:
        """The cached index of ``plan``, or a new one (built, cached, older ones of the same files removed)."""
        meta_file = plan._file(".json")
        if meta_file is not None:
            index = _load(plan)
            if index is not None:
                return index
        text, sa, meta = _build(plan, progress)
        built = cls(text, sa, meta, plan)
        if meta_file is None:
            return built
        try:
            atomic_write(plan._file(".text.npy"), lambda f: np.save(f, text))
            atomic_write(plan._file(".sa.npy"), lambda f: np.save(f, sa))
            atomic_write_text(meta_file, json.dumps(meta))  # written last: its presence means complete
        except OSError:
            return built  # an unwritable cache costs a rebuild next time, nothing else
        _remove_stale(plan)
        return _load(plan) or built

    def check(self, generated: str) -> CopyReport:
        """Copy figures of ``generated`` (pass only the generated text, not the prompt)."""
        points = np.frombuffer(generated.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        widths = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)  # UTF-8 bytes per character
        ends = np.cumsum(widths)
        starts = ends - widths
        query = np.frombuffer(generated.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        lcp, where = self._matching_statistics(query, starts)
        matched = np.searchsorted(ends, starts + lcp, side="right") - np.arange(len(starts))  # (m,) in characters
        m = len(generated)
        best = int(matched.argmax()) if m else 0
        longest = int(matched[best]) if m else 0
        windows = {w: (float(np.mean(matched[: m - w + 1] >= w)) if m >= w else None) for w in WINDOWS}
        lines_checked, copied = 0, []
        start = 0
        for line in generated.split("\n"):
            if sum(not c.isspace() for c in line) >= MIN_LINE_CHARS:
                lines_checked += 1
                if matched[start] >= len(line):
                    copied.append((line, self.place(int(where[start]))))
            start += len(line) + 1
        return CopyReport(m, longest, generated[best : best + longest], best,
                          self.place(int(where[best])) if longest else None, windows, lines_checked, copied)

    def place(self, offset: int) -> Place:
        """File, line and character offset of a byte offset into the training text."""
        j = int(np.searchsorted(self.file_starts, offset, side="right")) - 1
        line = self._count_lines(offset) - self._count_lines(int(self.file_starts[j])) + 1
        block = offset // BLOCK
        chars = self.block_chars[block] + np.count_nonzero((self.text[block * BLOCK : offset] & 0xC0) != 0x80)
        return Place(self.files[j], int(line), int(chars))

    def _count_lines(self, offset: int) -> int:
        block = offset // BLOCK
        return int(self.block_lines[block] + np.count_nonzero(self.text[block * BLOCK : offset] == 10))

    def _matching_statistics(self, query: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each start: bytes of ``query[start:]`` found verbatim in the text, and a text offset where.

        One binary search per start, all at once: the bracket (lo, hi) holds
        suffixes below and at-or-above the query; the query shares
        ``min(L, R)`` bytes with everything inside, so comparisons start there.
        The longest match is with a neighbour of the final insertion point.
        """
        m, n = len(starts), len(self.text)
        if m == 0 or n == 0:
            return np.zeros(m, np.int64), np.zeros(m, np.int64)
        qlen = len(query) - starts
        lo, hi = np.full(m, -1, np.int64), np.full(m, n, np.int64)
        low_lcp, high_lcp = np.zeros(m, np.int64), np.zeros(m, np.int64)
        rows = np.arange(m)
        while rows.size:
            mid = (lo[rows] + hi[rows]) // 2
            lcp, below = self._compare(query, starts[rows], qlen[rows], self.sa[mid].astype(np.int64),
                                       np.minimum(low_lcp[rows], high_lcp[rows]))
            hi[rows[below]], high_lcp[rows[below]] = mid[below], lcp[below]
            lo[rows[~below]], low_lcp[rows[~below]] = mid[~below], lcp[~below]
            rows = rows[hi[rows] - lo[rows] > 1]
        use_low = low_lcp >= high_lcp
        where = np.where(use_low, self.sa[np.maximum(lo, 0)], self.sa[np.minimum(hi, n - 1)]).astype(np.int64)
        return np.maximum(low_lcp, high_lcp), where

    def _compare(self, query, qstart, qlen, tpos, known) -> tuple[np.ndarray, np.ndarray]:
        """Common prefix of each query suffix with the text suffix at ``tpos`` (≥ ``known``), and whether the
        query sorts first (it does when it is a prefix of that suffix).  Compared 16, 32, 64… bytes at a time."""
        text, n = self.text, len(self.text)
        lcp, query_first = known.copy(), np.zeros(len(qstart), bool)
        todo, width = np.arange(len(qstart)), 16
        while todo.size:
            k = lcp[todo, None] + np.arange(width)  # (a, W) offsets into both suffixes
            q_end = k >= qlen[todo, None]
            t_idx = tpos[todo, None] + k
            t_end = t_idx >= n
            qv = query[np.minimum(qstart[todo, None] + k, len(query) - 1)]
            tv = text[np.minimum(t_idx, n - 1)]
            stop = q_end | t_end | (qv != tv)
            first = stop.argmax(axis=1)
            hit = stop[np.arange(len(todo)), first]
            rows, f = np.flatnonzero(hit), first[hit]
            lcp[todo[rows]] += f
            query_first[todo[rows]] = q_end[rows, f] | (~t_end[rows, f] & (qv[rows, f] < tv[rows, f]))
            lcp[todo[~hit]] += width
            todo, width = todo[~hit], width * 2
        return lcp, query_first


def _load(plan: IndexPlan) -> CopyIndex | None:
    """The cached index, or None when a file is missing, unreadable or inconsistent (then it is rebuilt)."""
    try:
        meta = json.loads(plan._file(".json").read_text())
        text = np.load(plan._file(".text.npy"), mmap_mode="r")
        sa = np.load(plan._file(".sa.npy"), mmap_mode="r")
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or text.shape != (meta["bytes"],) or sa.shape != text.shape or text.dtype != np.uint8:
        return None
    return CopyIndex(text, sa, meta, plan)


def _remove_stale(plan: IndexPlan) -> None:
    """Indexes of the same files with other contents (edited since) cost 5 bytes per corpus byte and serve
    only if the edit is undone: remove them.  Another split of unchanged files keeps its index."""
    mine = [str(p) for p in plan.paths]
    for other in plan.cache_dir.glob("copy-*.json"):
        key = other.name[len("copy-") : -len(".json")]
        try:
            meta = json.loads(other.read_text())
        except (OSError, ValueError):
            continue
        if key != plan.key and meta.get("paths") == mine and meta.get("sha256") != list(plan.sha256):
            for suffix in (".json", ".text.npy", ".sa.npy"):
                (plan.cache_dir / f"copy-{key}{suffix}").unlink(missing_ok=True)


def _build(plan: IndexPlan, progress: Progress | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read the training split as UTF-8 bytes and sort its suffixes: memory ≈ 5 bytes per byte (int32 array)."""
    try:
        from pydivsufsort import divsufsort
    except ImportError:
        raise RnnlmError("the copy check needs pydivsufsort: pip install pydivsufsort") from None
    report = progress or (lambda name, done, total: None)
    buf = np.empty(sum(plan.sizes) + len(plan.sizes) - 1, dtype=np.uint8)  # untouched pages cost no memory
    used = chars = 0
    reading = f"copy index: reading the training split ({plan.train_chars:,} characters)"
    report(reading, 0, plan.train_chars)
    for chunk in iter_text(list(plan.paths)):
        if chars >= plan.train_chars:
            break
        data = chunk[: plan.train_chars - chars].encode("utf-8")
        buf[used : used + len(data)] = np.frombuffer(data, dtype=np.uint8)
        used, chars = used + len(data), chars + min(len(chunk), plan.train_chars - chars)
        report(reading, chars, plan.train_chars)
    if chars != plan.train_chars:
        raise InputError("the corpus files changed while they were being read; run again")
    text = buf[:used]
    sorting = f"copy index: sorting {used:,} suffixes"
    report(sorting, 0, 0)
    sa = divsufsort(text) if used else np.zeros(0, np.int32)
    report(sorting, 1, 0)
    starts = np.cumsum([0] + [s + 1 for s in plan.sizes[:-1]])
    meta = {"format": FORMAT, "bytes": int(used), "paths": [str(p) for p in plan.paths], "sha256": list(plan.sha256),
            "file_starts": [int(s) for s in starts if s < max(used, 1)], **_block_tables(text)}
    return text, sa, meta


def _block_tables(text: np.ndarray) -> dict:
    """Characters and newlines before each 64 KiB block, so a place needs at most one block counted."""
    starts = np.arange(0, len(text), BLOCK)
    chars, lines = np.zeros(len(starts) + 1, np.int64), np.zeros(len(starts) + 1, np.int64)
    slab = BLOCK * 64  # counted a few MB at a time: no temporary as large as the text
    for s in range(0, len(text), slab):
        part = text[s : s + slab]
        local = np.arange(0, len(part), BLOCK)
        chars[s // BLOCK + 1 : s // BLOCK + 1 + len(local)] = np.add.reduceat(((part & 0xC0) != 0x80).astype(np.int32), local)
        lines[s // BLOCK + 1 : s // BLOCK + 1 + len(local)] = np.add.reduceat((part == 10).astype(np.int32), local)
    return {"block_chars": np.cumsum(chars).tolist(), "block_lines": np.cumsum(lines).tolist()}
