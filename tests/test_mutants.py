"""Tests for mutants that survived ``scripts/mutation.py`` (issue 22, item 8).

Each test says which mutations it kills (mutmut's text: ``old -> new``).  The script runs this file with every
target, so a test here counts for whichever module it reaches.
"""

from __future__ import annotations

import errno
import json
import re

import numpy as np
import pytest

from rnnlm.core import fileio
from rnnlm.core.errors import InputError, RnnlmError
from rnnlm.core.fileio import HISTORY_MARK, NPZ, PAGE, PAGE_MARK, check_output, is_checkpoint, write_output
from rnnlm.data.tokenizers.char import CharTokenizer, codepoints, smallest_dtype

# --- the char tokenizer (rnnlm/data/tokenizers/char.py) ---------------------------------------------------------


def test_a_char_tokenizer_built_from_its_characters_has_no_unk_and_nothing_pooled():
    # CharTokenizer(chars) is how every checkpoint rebuilds its tokenizer (tokenizer_from_state) with the stored
    # flags; kills __init__'s defaults unk=False -> True and min_char_count=0 -> 1, and unknown_count = 0 -> None / 1,
    # rare_chars = "" -> None / "XXXX" (a restored tokenizer reports nothing pooled).
    tok = CharTokenizer("ab")
    assert tok.unk_id is None and tok.vocab_size == 2
    assert tok.encode("ba").tolist() == [1, 0] and tok.decode([1, 0]) == "ba"
    assert tok.to_dict() == {"kind": "char", "chars": "ab", "unk": False, "min_char_count": 0, "vocab_size": 2}
    assert tok.unknown_count == 0 and tok.rare_chars == ""


def test_min_char_count_is_kept_as_given():
    # Resuming reads it back from the checkpoint (api.py); kills from_text's and from_counts's default 0 -> 1 and
    # from_counts dropping min_char_count=min_char_count when it builds the tokenizer.
    assert CharTokenizer.from_text("aab").min_char_count == 0
    assert CharTokenizer.from_counts(np.array([97]), np.array([2])).min_char_count == 0
    tok = CharTokenizer.from_text("aaab", min_char_count=2)
    assert tok.min_char_count == 2 and tok.to_dict()["min_char_count"] == 2


def test_zero_counts_are_not_characters_of_the_corpus():
    # from_counts takes per-code-point counts; a zero count is a character the corpus lacks, not a rare one.
    # Kills rare = (counts > 0) & ~keep -> (counts >= 0) & ~keep.
    tok = CharTokenizer.from_counts(np.array([97, 98]), np.array([3, 0]))
    assert tok.chars == "a" and tok.unk_id is None and tok.vocab_size == 1
    assert tok.rare_chars == "" and tok.unknown_count == 0


def test_unk_takes_one_id_and_decode_refuses_ids_past_either_end():
    # Kills vocab_size = len(chars) + (1 if unk ...) -> 2; in decode, `min < 0 or max >= vocab_size` -> `and`
    # (a negative id would index from the end: a silent wrong character), `>=` -> `>` (an IndexError, not a
    # message), and InputError(message) -> InputError(None).
    tok = CharTokenizer.from_counts(np.array([97, 98, 99]), np.array([5, 5, 1]), min_char_count=2)
    assert tok.unk_id == 0 and tok.chars == "ab" and tok.vocab_size == 3
    assert tok.decode([0, 1, 2]) == "\ufffdab"
    for bad in ([3], [-1], [0, 3], [-1, 1]):
        with pytest.raises(InputError, match="^id out of range for a vocabulary of 3$"):
            tok.decode(bad)


def test_unknown_characters_are_refused_by_default_even_with_an_unk():
    # A vocabulary with <unk> still refuses unknown characters unless asked to map them.  Kills encode_points's
    # default unknown="error" -> "XXerrorXX" / "ERROR", `unknown == "error"` -> "XXerrorXX" / "ERROR" (the text
    # would be mapped to <unk> silently), the hint's `if unknown == "unk"` -> `or True`, its text -> "XX...XX", its
    # else "" -> "XXXX", and ValueError(message) -> ValueError(None).
    tok = CharTokenizer.from_text("aaab", min_char_count=2)  # "b" is rare: the vocabulary has <unk>
    assert tok.unk_id == 0 and tok.chars == "a"
    assert tok.encode_points(codepoints("a")).tolist() == [1]
    with pytest.raises(InputError, match=r"^characters not in the vocabulary: 'b' \(U\+0062\)$"):
        tok.encode_points(codepoints("ab"))
    with pytest.raises(InputError, match=r"^characters not in the vocabulary: 'b' \(U\+0062\)$"):
        tok.encode("ab")
    assert tok.encode("ab", unknown="unk").tolist() == [1, 0]
    without = CharTokenizer("a")
    with pytest.raises(InputError, match=r"^characters not in the vocabulary: 'b' \(U\+0062\); this vocabulary "
                                         r"has no <unk> \(see --min-char-count\)$"):
        without.encode("ab", unknown="unk")
    with pytest.raises(ValueError, match="^unknown must be 'error' or 'unk', not 'skip'$"):
        tok.encode("a", unknown="skip")


def test_a_vocabulary_past_uint32_is_refused_with_its_size():
    # Kills smallest_dtype's InputError(message) -> InputError(None).
    assert smallest_dtype(2**32) == np.uint32
    with pytest.raises(InputError, match="^vocabulary of 4294967297 symbols is too large$"):
        smallest_dtype(2**32 + 1)


# --- the atomic write helper and the output rule (rnnlm/core/fileio.py) ------------------------------------------


def test_a_write_creates_no_directories_unless_asked_and_then_all_of_them(tmp_path):
    # A missing parent is an error by default (a file the user names never gets one); parents=True (rnnlm's own
    # caches) creates every missing level.  Kills the parents=False -> True defaults of atomic_write,
    # atomic_write_text and atomic_write_to, atomic_write_text's parents=parents -> None / dropped, and
    # atomic_write_to's mkdir(parents=True) -> None / dropped.
    missing = tmp_path / "no" / "such" / "f.txt"
    for write in (lambda: fileio.atomic_write(missing, lambda f: f.write(b"x")),
                  lambda: fileio.atomic_write_text(missing, "x"),
                  lambda: fileio.atomic_write_to(missing, lambda p: p.write_bytes(b"x"))):
        with pytest.raises(FileNotFoundError):
            write()
    assert not (tmp_path / "no").exists()
    assert fileio.atomic_write_text(missing, "é", parents=True) == missing
    assert missing.read_bytes() == "é".encode()
    deeper = tmp_path / "a" / "b" / "c.bin"
    fileio.atomic_write_to(deeper, lambda p: p.write_bytes(b"y"), parents=True)
    assert deeper.read_bytes() == b"y"


@pytest.mark.parametrize("content, ours", [
    (HISTORY_MARK + "\nhello\n", True),
    (HISTORY_MARK + "\r\nhello\r\n", True),        # CRLF, as an editor on Windows saves it
    (HISTORY_MARK, True),                           # the mark alone, no newline
    (HISTORY_MARK + "\n\nafter an empty line", True),
    (HISTORY_MARK + " \nhello\n", False),           # a first line longer than the mark is not the mark
    (HISTORY_MARK + "X\nhello\n", False),
    ("\r" + HISTORY_MARK + "\n", False),
    ("note 1\n" + HISTORY_MARK + "\n", False),      # the mark below the first line
    ("", False),
])
def test_a_history_file_is_ours_only_when_its_first_line_is_the_mark(tmp_path, content, ours):
    # No test of the selection reached _has_history_mark (chat's tests do, through the CLI); these kill its 14
    # non-equivalent mutants: rstrip(b"\r") -> rstrip(None) / lstrip / rstrip(b"XX\rXX"), split(b"\n") -> split(None)
    # / split(b"XX\nXX") / rsplit, [0] -> [1], == -> !=, and _head's path / size -> None, dropped or len - 2.
    path = tmp_path / "history"
    path.write_bytes(content.encode())
    assert fileio._has_history_mark(path) is ours
    assert fileio.HISTORY.is_ours(path) is ours
    assert fileio._has_history_mark(tmp_path / "missing") is False


def test_a_page_mark_counts_only_in_the_head_of_the_file(tmp_path):
    # An HTML file of the user's that quotes rnnlm's meta tag in its body (a page about rnnlm) is not a page rnnlm
    # wrote: replacing it without --force would lose it.  Kills _has_page_mark's _head(path, 4096) -> (path, None)
    # and _head's f.read(size) -> f.read(None).
    page = tmp_path / "about.html"
    page.write_text("<html><head><title>notes</title></head><body>" + "x" * 10_000 + PAGE_MARK + "</body></html>")
    assert not fileio._has_page_mark(page)
    with pytest.raises(InputError, match="exists and is not an HTML page rnnlm wrote"):
        check_output(page, PAGE)
    page.write_text(f"<html><head>{PAGE_MARK}</head><body>" + "x" * 10_000 + "</body></html>")
    assert fileio._has_page_mark(page)


def test_is_checkpoint_wants_the_brace_and_a_header_that_fits(tmp_path):
    # Kills is_checkpoint's `len(head) < 9 or head[8:9] != b"{"` -> `and` (16 zero bytes: header length 0, no brace),
    # `8 + length <= size` -> `8 - length`, `9 + length` and `<` (an empty safetensors file is exactly its header).
    from safetensors.torch import save_file

    empty = tmp_path / "empty.safetensors"
    save_file({}, empty)
    assert empty.stat().st_size == 8 + int.from_bytes(empty.read_bytes()[:8], "little")
    assert is_checkpoint(empty)
    zeros = tmp_path / "zeros.bin"
    zeros.write_bytes(bytes(16))
    notes = tmp_path / "notes.txt"
    notes.write_text('notes:  {"a": 1}')  # a brace at byte 8, and a "length" of 8 text bytes far past the end
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(empty.read_bytes()[:-1])
    for path in (zeros, notes, truncated, tmp_path / "short", tmp_path):
        assert not is_checkpoint(path), path


def test_check_output_names_the_flag_and_the_problem(tmp_path, monkeypatch):
    # Kills check_output's flag="--out" -> "XX--outXX" / "--OUT", the "is not a directory" message (its condition
    # `and False`, its text), the directory message -> None / `path * 'out'` / "XXoutXX" / "OUT", and the unwritable
    # directory's message -> None (reached with os.access patched: tests run as root, who may write anywhere).
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(InputError, match=f"^--out {re.escape(str(afile / 'p.html'))}: the directory "
                                         f"{re.escape(str(afile))} is not a directory "):
        check_output(afile / "p.html", PAGE)
    with pytest.raises(InputError, match=f"^--out {re.escape(str(tmp_path))} is a directory; give a file name "
                                         f"such as {re.escape(str(tmp_path / 'out'))}$"):
        check_output(tmp_path, PAGE)
    monkeypatch.setattr(fileio.os, "access", lambda path, mode: False)
    with pytest.raises(InputError, match=f"^--npz {re.escape(str(tmp_path / 'a.npz'))}: the directory "
                                         f"{re.escape(str(tmp_path))} is not writable$"):
        check_output(tmp_path / "a.npz", NPZ, flag="--npz")


def test_write_output_passes_its_flag_and_inputs_and_sorts_write_errors(tmp_path):
    # Kills write_output's flag="--out" -> "XX--outXX" / "--OUT", flag=flag -> None / dropped, inputs=inputs dropped,
    # and its OSError handling: error = (RnnlmError if ENOSPC else InputError) -> None / `and False` / `or True` /
    # `!=`, the message -> None, and `exc.strerror or exc` -> `and`.
    missing = tmp_path / "nonexistent" / "p.html"
    with pytest.raises(InputError, match=f"^--out {re.escape(str(missing))}: the directory"):
        write_output(missing, b"x", PAGE)
    with pytest.raises(InputError, match=f"^--history {re.escape(str(missing))}: the directory"):
        write_output(missing, b"x", fileio.HISTORY, flag="--history")
    source = tmp_path / "text.html"
    source.write_text("the text being read")
    with pytest.raises(InputError, match="is the input being read"):
        write_output(source, b"x", PAGE, inputs=[source], force=True)
    assert source.read_text() == "the text being read"

    def fails(code, text):
        def write(f):
            raise OSError(code, text)
        return write

    target = tmp_path / "p.html"
    with pytest.raises(RnnlmError) as full:
        write_output(target, fails(errno.ENOSPC, "No space left on device"), PAGE)
    assert type(full.value) is RnnlmError and full.value.exit_code == 1
    assert str(full.value) == f"cannot write {target}: No space left on device"
    with pytest.raises(InputError, match=f"^cannot write {re.escape(str(target))}: Permission denied$"):
        write_output(target, fails(errno.EACCES, "Permission denied"), PAGE)
    assert not target.exists()



def test_the_temp_file_lies_hidden_beside_the_target_and_only_durable_writes_fsync(tmp_path, monkeypatch):
    # The temp file is renamed over the target, so it must be in the target's directory (a rename across file
    # systems fails); a crash leaves a hidden ".NAME.*.tmp" that says what it was.  Kills mkstemp's prefix, suffix
    # and dir -> None / dropped / "XX.tmpXX" / ".TMP".  fsync is counted: kills durable=False -> True in atomic_write
    # and atomic_write_to, and atomic_write's durable=durable -> None / dropped (checkpoints ask for durable=True).
    synced = []
    real_fsync = fileio.os.fsync
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    target = tmp_path / "best.safetensors"
    seen = []
    fileio.atomic_write_to(target, lambda tmp: seen.append(tmp) or tmp.write_bytes(b"x"))
    (tmp,) = seen
    assert tmp.parent == target.parent and tmp.name.startswith(".best.safetensors.") and tmp.name.endswith(".tmp")
    assert not tmp.exists() and target.read_bytes() == b"x"
    fileio.atomic_write(target, lambda f: f.write(b"y"))
    fileio.atomic_write_text(target, "z")
    assert synced == []
    fileio.atomic_write(target, lambda f: f.write(b"y"), durable=True)
    assert len(synced) == 2  # the file, then its directory
    fileio.atomic_write_to(target, lambda p: p.write_bytes(b"w"), durable=True)
    assert len(synced) == 4 and target.read_bytes() == b"w"


def test_a_failing_writer_raises_its_own_error_even_when_the_temp_file_is_gone(tmp_path):
    # A writer that recreates or removes its file (safetensors does) and then fails: the caller sees that failure,
    # not a FileNotFoundError from the clean-up.  Kills unlink(missing_ok=True) -> None / False.
    target = tmp_path / "out.bin"
    target.write_bytes(b"before")

    def write_to(tmp):
        tmp.unlink()
        raise ValueError("the writer failed")

    with pytest.raises(ValueError, match="the writer failed"):
        fileio.atomic_write_to(target, write_to)
    assert target.read_bytes() == b"before" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_the_page_mark_is_looked_for_in_the_first_4096_bytes(tmp_path):
    # The window _has_page_mark reads (pages rnnlm writes carry the mark in the first few hundred bytes).  Kills
    # _head(path, 4096) -> 4097: a mark ending at byte 4097 is not in the window.
    page = tmp_path / "p.html"
    mark = PAGE_MARK.encode()
    page.write_bytes(b" " * (4096 - len(mark)) + mark)
    assert fileio._has_page_mark(page)
    page.write_bytes(b" " * (4097 - len(mark)) + mark)
    assert not fileio._has_page_mark(page)


# --- checkpoints (rnnlm/core/checkpoint.py) -----------------------------------------------------------------------


def _header_len_file(first_bytes_len: int, total: int) -> bytes:
    """``total`` bytes whose 8-byte header length is ``first_bytes_len``, with the brace at byte 8."""
    return first_bytes_len.to_bytes(8, "little") + b"{" + b" " * (total - 9)


def test_describe_foreign_keeps_the_header_bound_and_names_pickles_and_zips():
    # A header length that starts with the pickle byte 0x80 still reads as safetensors while 8 + length fits in the
    # file plus 1 MiB, and as a pickle one byte past that.  Kills `and` -> `or` (a zip with a small "length" and no
    # brace), `8 + header_len` -> `8 - header_len` / `9 + header_len`, `<=` -> `<`, 1 << 20 -> 1 >> 20 / 2 << 20 /
    # 1 << 21, and the texts "a torch.save zip archive (pickle inside)" / "a Python pickle" -> "XX..XX" / cased.
    from rnnlm.core.checkpoint import _describe_foreign

    length = 0x100080  # low byte 0x80: the file's first byte is the pickle magic
    assert _describe_foreign(_header_len_file(length, length + 8 - (1 << 20))) is None          # exactly fits
    assert _describe_foreign(_header_len_file(length, length + 8 - (1 << 20) - 1)) == "a Python pickle"
    assert _describe_foreign(b"\x80" + b"\xff" * 7 + b"{" + b" " * 40) == "a Python pickle"   # brace, huge length
    assert _describe_foreign(b"PK" + bytes(6) + b"x" * 40) == "a torch.save zip archive (pickle inside)"
    assert _describe_foreign(b"PK\x03\x04" + b"x" * 40) == "a torch.save zip archive (pickle inside)"


def _st_file(path, meta: dict | None, tensors=None):
    import json

    import torch
    from safetensors.torch import save_file

    tensors = tensors if tensors is not None else {"model.w": torch.arange(6.0).reshape(2, 3)}
    save_file(tensors, str(path), metadata=None if meta is None else {"rnnlm": meta if isinstance(meta, str)
                                                                          else json.dumps(meta)})
    return tensors


def test_load_checkpoint_says_what_is_wrong_in_one_exact_line(tmp_path):
    # Kills the messages -> None (a directory; an unreadable header; another format), the format message's
    # meta.get('format') -> get(None) / 'XXformatXX' / 'FORMAT', and data[8:9] != b"{" -> data[9:9] / data[8:10] /
    # b"XX{XX" (a truncated checkpoint has its brace: it is "corrupted", not "not a checkpoint").
    from rnnlm.core.checkpoint import load_checkpoint, save_checkpoint

    import torch

    with pytest.raises(InputError, match=f"^{re.escape(str(tmp_path))} is a directory; pass a .safetensors file or "
                                         f"a run directory$"):
        load_checkpoint(tmp_path)
    bad_json = tmp_path / "bad-json.safetensors"
    _st_file(bad_json, "{not json")
    with pytest.raises(InputError, match=f"^corrupted checkpoint: {re.escape(str(bad_json))} \\(unreadable header\\)$"):
        load_checkpoint(bad_json)
    other = tmp_path / "other.safetensors"
    _st_file(other, {"format": "someone-else"})
    with pytest.raises(InputError, match=f"^{re.escape(str(other))} is not an rnnlm checkpoint "
                                         f"\\(format 'someone-else'\\)$"):
        load_checkpoint(other)
    cut = tmp_path / "cut.safetensors"
    save_checkpoint(cut, {"model.w": torch.zeros(64, 64)}, {})
    cut.write_bytes(cut.read_bytes()[:-100])
    with pytest.raises(InputError, match=f"^corrupted checkpoint: {re.escape(str(cut))} \\(truncated or damaged: "):
        load_checkpoint(cut)
    missing = tmp_path / "none.safetensors"
    with pytest.raises(InputError, match=f"^checkpoint not found: {re.escape(str(missing))}$"):
        load_checkpoint(missing)


def test_a_checkpoint_header_without_a_version_reads_as_version_0_and_saving_writes_version_1(tmp_path):
    # Kills load_checkpoint's meta.get("version", 0) -> get("version", None) / get("version") (int(None) is a
    # TypeError), and save_checkpoint dropping version=VERSION from the header.
    import torch

    from rnnlm.core.checkpoint import VERSION, load_checkpoint, save_checkpoint, tensor_checksum

    path = tmp_path / "old.safetensors"
    tensors = {"model.w": torch.arange(6.0).reshape(2, 3)}
    _st_file(path, {"format": "rnnlm-checkpoint", "checksum": tensor_checksum(tensors)}, tensors)
    meta, loaded = load_checkpoint(path)
    assert "version" not in meta and torch.equal(loaded["model.w"], tensors["model.w"])
    meta, _ = load_checkpoint(save_checkpoint(tmp_path / "new.safetensors", tensors, {}))
    assert meta["version"] == VERSION == 1


@pytest.mark.parametrize("error, what", [
    (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
    (OSError(errno.EACCES, "Permission denied"), "Permission denied"),
    (OSError("no errno at all"), "no errno at all"),
])
def test_a_failed_checkpoint_save_says_why_in_its_own_words(tmp_path, monkeypatch, error, what):
    # Kills save_checkpoint's `"disk full" if ENOSPC` -> `or True` / "XXdisk fullXX", `exc.strerror or str(exc)` ->
    # `and` (the "[Errno 13] ..." text) and str(exc) -> str(None) (an OSError without strerror).
    import torch

    from rnnlm.core.checkpoint import save_checkpoint

    def fail(fd):
        raise error

    monkeypatch.setattr(fileio.os, "fsync", fail)
    path = tmp_path / "latest.safetensors"
    with pytest.raises(RnnlmError, match=f"^could not save {re.escape(str(path))} \\({what}\\); the previous "
                                         f"checkpoint there is intact$"):
        save_checkpoint(path, {"model.w": torch.zeros(2)}, {})


def test_load_weights_names_the_first_bad_tensor_and_counts_the_rest():
    # Kills load_weights's edited text -> None / "XX..XX" / upper case, the "(and N more ...)" clause's
    # `len(wrong) > 1` -> `or True` / `>= 1` / `> 2` and its else "" -> "XXXX", extra = sorted(...) -> None (torch's
    # own error instead), and the extra-tensor message -> None / extra[0] -> extra[1].
    import torch

    from rnnlm.core.checkpoint import load_weights

    module = torch.nn.Linear(3, 2)
    edited = "; the header or the tensors were edited$"
    with pytest.raises(InputError, match=r"^checkpoint c\.st: tensor model\.weight has shape \(2, 4\) but the "
                                         r"header's config implies \(2, 3\)" + edited):
        load_weights(module, {"model.weight": torch.zeros(2, 4), "model.bias": torch.zeros(2)}, "c.st")
    with pytest.raises(InputError, match=r"^checkpoint c\.st: tensor model\.weight has shape \(2, 4\) but the "
                                         r"header's config implies \(2, 3\) \(and 1 more tensors differ\)" + edited):
        load_weights(module, {"model.weight": torch.zeros(2, 4), "model.bias": torch.zeros(3)}, "c.st")
    with pytest.raises(InputError, match=r"^checkpoint c\.st: the header's config implies a tensor model\.bias that "
                                         r"the file lacks" + edited):
        load_weights(module, {"model.weight": torch.zeros(2, 3)}, "c.st")
    with pytest.raises(InputError, match=r"^checkpoint c\.st: tensor model\.a is not part of the model the header's "
                                         r"config describes" + edited):
        load_weights(module, {"model.weight": torch.ones(2, 3), "model.bias": torch.ones(2),
                              "model.z": torch.zeros(1), "model.a": torch.zeros(1), "other.x": torch.zeros(1)}, "c.st")
    load_weights(module, {"model.weight": torch.ones(2, 3), "model.bias": torch.ones(2), "other.x": torch.zeros(1)},
                 "c.st")
    assert torch.equal(module.weight, torch.ones(2, 3))


def test_resolve_checkpoint_picks_best_latest_or_the_newest_run(tmp_path):
    # resolve_checkpoint had no test of its own in the selection (25 survivors).  Kills latest=False -> True, every
    # mutant of the newest-run choice (glob / key / sort / runs[-1] -> None, runs[+1], runs[-2]; `if not runs` ->
    # `if runs`; `is_dir() and False`), names -> None / `latest and False` / `or True`, path / name -> path * name,
    # and each message -> None / its join -> None / "XX or XX" / " OR ".
    import os

    from rnnlm.core.checkpoint import resolve_checkpoint

    root = tmp_path / "checkpoints"
    with pytest.raises(InputError, match=f"^no checkpoint given and no runs under {re.escape(str(root))}/; train one "
                                         f"with `rnnlm train CORPUS`$"):
        resolve_checkpoint(None, root=root)
    names = ["run-a", "run-b", "run-c", "run-d"]
    for name in names:
        (root / name).mkdir(parents=True)
        for file in ("best.safetensors", "latest.safetensors"):
            (root / name / file).write_bytes(b"x")
    # The newest run is last neither by name nor in the directory's own order (so neither an unsorted list nor one
    # sorted by name finds it); the others are older in turn.
    listed = [p.parent.name for p in root.glob("*/latest.safetensors")]
    newest = next(n for n in names if n not in (listed[-1], names[-1]))
    for age, name in enumerate([newest, *(n for n in names if n != newest)]):
        for file in ("best.safetensors", "latest.safetensors"):
            os.utime(root / name / file, (1_000_000 - 1000 * age, 1_000_000 - 1000 * age))
    assert resolve_checkpoint(None, root=root) == root / newest / "best.safetensors"
    assert resolve_checkpoint(None, latest=True, root=root) == root / newest / "latest.safetensors"
    run = root / next(n for n in names if n != newest)
    assert resolve_checkpoint(run) == run / "best.safetensors"
    assert resolve_checkpoint(run, latest=True) == run / "latest.safetensors"
    (run / "best.safetensors").unlink()
    assert resolve_checkpoint(run) == run / "latest.safetensors"
    (run / "latest.safetensors").unlink()
    with pytest.raises(InputError, match=f"^{re.escape(str(run))} holds no best.safetensors or latest.safetensors; "
                                         f"is it a run directory from `rnnlm train`\\?$"):
        resolve_checkpoint(run)
    with pytest.raises(InputError, match=f"^{re.escape(str(run))} holds no latest.safetensors; "):
        resolve_checkpoint(run, latest=True)
    with pytest.raises(InputError, match=f"^checkpoint not found: {re.escape(str(run / 'x.safetensors'))}$"):
        resolve_checkpoint(run / "x.safetensors")
    assert resolve_checkpoint(root / newest / "best.safetensors") == root / newest / "best.safetensors"


# --- the page helpers (rnnlm/core/pages.py) -------------------------------------------------------------------------


def test_script_json_is_compact_raw_utf8_json_with_every_lt_escaped():
    # The pages' data: compact (the page's size), non-ASCII as itself (a \\uXXXX per character would triple a Korean
    # vocabulary), and no "<" left for the HTML parser.  Kills json.dumps(value) -> dumps(None), separators -> None /
    # dropped / ("XX,XX", ":") / (",", "XX:XX"), ensure_ascii=False -> True / dropped, and replace("<", ...) ->
    # replace("XX<XX", ...) / "XX\\u003cXX" / "\\u003C" (as valid, but the
    # text pinned here is the one the docstring and the browser test name).
    from rnnlm.core.pages import script_json

    value = {"name": "</script><b>é 한</b>", "list": [1, 2.5, None, True], "nested": {"k": "v"}}
    text = script_json(value)
    assert "<" not in text and json.loads(text) == value
    assert text == ('{"name":"\\u003c/script>\\u003cb>é 한\\u003c/b>","list":[1,2.5,null,true],'
                    '"nested":{"k":"v"}}')
    assert script_json(["é", "<"]) == '["é","\\u003c"]'


# --- the inspection page's data and text (rnnlm/inspection/page.py) ------------------------------------------------


def _levels(layers: int, steps: int, hidden: int, salt: int) -> np.ndarray:
    """Distinct-looking 4-bit levels (layers, steps, hidden): unit and step are never confused."""
    grid = np.indices((layers, steps, hidden))
    return ((3 * grid[0] + 5 * grid[1] + 7 * grid[2] + salt) % 16).astype(np.uint8)


def _nibbles(row) -> bytes:
    """4-bit levels → bytes, step 2j in the low nibble (written out here, not pack_nibbles)."""
    row = list(row) + [0] * (len(row) % 2)
    return bytes(int(row[j]) | int(row[j + 1]) << 4 for j in range(0, len(row), 2))


def _small_inspection(**changes):
    import dataclasses

    from rnnlm.inspection.finder import Column, FeatureResult, UnitScore
    from rnnlm.inspection.gradreach import GradientReach
    from rnnlm.inspection.inspector import Inspection
    from rnnlm.model.unroll import SIGNAL_RANGE

    layers, steps, hidden = 2, 5, 3
    signals = {}
    for salt, name in enumerate("hcifgo"):
        lo, hi = SIGNAL_RANGE[name]
        signals[name] = (lo + (hi - lo) * _levels(layers, steps, hidden, salt) / 15).astype(np.float32)
    found = [FeatureResult("quote", "binary", "in a quote", units=[
                 UnitScore(Column(0, "h", 1), 0.81234, 0.7654321, True),
                 UnitScore(Column(1, "c", 0), 0.5, -0.9, True),
                 UnitScore(Column(1, "h", 2), 0.2, 0.1, False)],
                 probe={"heldout_score": 0.876543, "units_used": 4}),
             FeatureResult("quiet", "binary", "nothing", units=[UnitScore(Column(1, "h", 1), 0.1, 0.05, False)]),
             FeatureResult("empty", "binary", "never", skipped="no positive examples")]
    insp = Inspection(
        checkpoint="runs/x/best.safetensors", cell="lstm", num_layers=layers, hidden_size=hidden, tokenizer="char",
        text="ab\nba", source="val", start=7, warmup_chars=0, ids=np.arange(steps), token_of_char=np.arange(steps),
        signals=signals, token_bits=np.zeros(steps), top_ids=np.array([[2, 1], [0, 2], [1, 0], [2, 0], [0, 1]]),
        top_probs=np.array([[0.6, 0.3], [1.0, 0.0], [0.5, 0.25], [0.9, 0.05], [0.7, 0.2]]),
        vocabulary=["\n", "a", "b"], bits=np.array([0.5, 1.25, 20.0, -0.1, 3.00007]), features=[], found=found,
        threshold=0.3, saturation={"i": np.array([[0.12345, 0.5], [0.0, 1.0]])},
        reach=GradientReach(np.array([[1.0, 0.4, 0.004], [2.0, 0.9, 0.123456789]]), 11),
        ngram_bits=np.array([0.5, 16.5, 0.0, 0.0, 0.00011]), ngram_name="3-gram", ngram_note="a note",
        wins=[{"text": "ab", "gain": 1.5}])
    return dataclasses.replace(insp, **changes)


def test_page_data_holds_every_value_where_the_page_reads_it():
    # page_data had no non-browser test reading its output.  Comparing its whole object to one written out here
    # kills its key and value mutants (names -> "XX..XX" / upper case, rounding digits, the `.T` of h, the unit
    # levels and nibbles, the bits scale and clip bounds, the top ids' dtype, `reach` / n-gram / tokenOfChar None
    # cases, the first unit shown), and the rounding of bpc and n-gram bpc (-> 5 digits / none) and the n-gram bits'
    # upper clip (-> None / 256: 16.5 bits would wrap to 8 or 0).
    import base64

    from rnnlm.inspection import page
    from rnnlm.model.unroll import SIGNAL_RANGE

    insp = _small_inspection()
    data = page.page_data(insp, [(1, 2)])
    b64 = lambda raw: base64.b64encode(bytes(raw)).decode("ascii")  # noqa: E731
    levels = {name: _levels(2, 5, 3, salt) for salt, name in enumerate("hcifgo")}
    palette = page.diverging_palette()
    expected = {
        "meta": {"checkpoint": "runs/x/best.safetensors", "cell": "lstm", "layers": 2, "hidden": 3, "tokenizer": "char",
                 "source": "val", "start": 7, "chars": 5, "bpc": 4.93,  # 4.930014 and 3.400022: 4 decimals
                 "ngramName": "3-gram", "ngramBpc": 3.4, "ngramNote": "a note", "threshold": 0.3},
        "text": "ab\nba", "steps": 5, "tokenOfChar": None,
        "signals": ["h", "c", "i", "f", "g", "o"], "ranges": {n: list(SIGNAL_RANGE[n]) for n in "hcifgo"},
        "palette": palette, "paletteText": [page._text_colour(c) for c in palette],
        "bitsColours": page.BITS_COLOURS, "diffColours": page.DIFF_COLOURS, "bitsScale": 16,
        "h": [b64(b"".join(_nibbles(levels["h"][layer, :, u]) for u in range(3))) for layer in range(2)],
        "extra": {f"{layer}:{unit}": {n: b64(_nibbles(levels[n][layer, :, unit])) for n in "cifgo"}
                  for layer, unit in [(0, 1), (1, 0), (1, 1), (1, 2)]},
        "bits": b64([8, 20, 255, 0, 48]), "ngramBits": b64([8, 255, 0, 0, 0]),  # 16.5 bits: past the byte
        "top": {"ids": b64(np.array([2, 1, 0, 2, 1, 0, 2, 0, 0, 1], "<u2").tobytes()), "wide": False,
                "probs": b64([153, 76, 255, 0, 128, 64, 230, 13, 178, 51]), "k": 2},
        "vocab": ["\n", "a", "b"],
        "found": [{"feature": "quote", "kind": "binary", "layer": 0, "unit": 1, "signal": "h", "held": 0.7654,
                   "select": 0.8123, "probe": 0.8765, "best": True, "probeUnits": 4},
                  {"feature": "quote", "kind": "binary", "layer": 1, "unit": 0, "signal": "c", "held": -0.9,
                   "select": 0.5, "probe": 0.8765, "best": False, "probeUnits": 4}],
        "notes": ["quiet: no unit reaches 0.3 held out (best +0.05)", "empty: skipped — no positive examples"],
        "first": [0, 1, "h"],
        "saturation": {"i": [[0.123, 0.5], [0.0, 1.0]]},
        "reach": {"norms": [[1.0, 0.4, 0.004], [2.0, 0.9, 0.1235]], "k1pct": None, "half": 2, "maxK": 3,
                  "windows": 11},
        "wins": [{"text": "ab", "gain": 1.5}],
    }
    assert json.loads(json.dumps(data)) == expected
    assert list(data["extra"]) == ["0:1", "1:0", "1:1", "1:2"]  # the finder's units first, then those asked for

    # No unit found: the page starts on the top layer's unit 0; no n-gram, no reach; a subword text maps its
    # characters to steps; a vocabulary past 65,536 ids stores them as 4 bytes (65,536 still fits 2).
    bare = _small_inspection(found=[], reach=None, ngram_bits=None, tokenizer="bpe",
                             token_of_char=np.array([0, 0, 1, 3, 4]))
    data = page.page_data(bare)
    assert data["first"] == (1, 0, "h") and data["found"] == [] and data["notes"] == [] and data["extra"] == {}
    assert data["reach"] is None and data["ngramBits"] is None and data["meta"]["ngramBpc"] is None
    assert data["tokenOfChar"] == [0, 0, 1, 3, 4] and data["meta"]["tokenizer"] == "bpe"
    ids = np.array([[2, 1], [0, 2], [1, 0], [2, 0], [0, 1]])
    for size, dtype in ((65536, "<u2"), (65537, "<u4")):
        top = page.page_data(_small_inspection(vocabulary=["x"] * size))["top"]
        assert top["wide"] is (dtype == "<u4") and top["ids"] == b64(ids.astype(dtype).tobytes())
    assert set(page.page_data(insp, "all")["extra"]) == {f"{layer}:{u}" for layer in range(2) for u in range(3)}


def test_render_is_the_template_with_the_title_and_the_data_in_their_places():
    # Kills render's title and page text mutants (each literal of the f-strings, the checkpoint's parent / name
    # parts, the data passed through script_json, the escaping of the title).
    from rnnlm.core.pages import script_json
    from rnnlm.inspection import page
    from rnnlm.inspection.assets import PAGE_CSS, PAGE_JS

    insp = _small_inspection(checkpoint="runs/<i>&run/best.safetensors")
    data = script_json(page.page_data(insp, [(1, 2)]))
    assert page.render(insp, [(1, 2)]) == (
        f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>{PAGE_MARK}"
        f"<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>rnnlm inspect — &lt;i&gt;&amp;run/best.safetensors</title><style>{PAGE_CSS}</style></head>\n"
        f"<body><script type='application/json' id='rnnlm-data'>{data}</script>\n{page._BODY}\n"
        f"<script>{PAGE_JS}</script></body></html>\n")


# --- the exported page (rnnlm/generation/export.py) -----------------------------------------------------------------


def _expected_web_page(module, tokenizer, facts, fp32, bos_id):
    """The page written out from its parts: template, metadata in the order the page's code expects it, weights."""
    import base64
    import html
    from importlib import resources

    from rnnlm import __version__
    from rnnlm.core.pages import fill_template, script_json
    from rnnlm.generation.export import _tensors
    from rnnlm.generation.web.kernel import matvec_module
    from rnnlm.model.cells import REGISTRY
    from rnnlm.model.network import num_parameters

    config = module.config
    cell = REGISTRY[config.cell]
    index, weights = _tensors(module, fp32)
    meta = {"format": "rnnlm-web", "version": 1, "rnnlm": __version__, **facts, "cell": config.cell,
            "cell_display": cell.display, "gates": cell.gates, "state": list(cell.state),
            "num_layers": config.num_layers, "hidden_size": config.hidden_size, "embed_size": config.embed_size,
            "vocab_size": config.vocab_size, "tied": config.tie_weights, "parameters": num_parameters(module),
            "weights": "fp32" if fp32 else "int8", "chars": [tokenizer.decode([i]) for i in range(config.vocab_size)],
            "unk_id": tokenizer.unk_id, "bos_id": bos_id, "tensors": index,
            "kernel": base64.b64encode(matvec_module()).decode("ascii")}
    files = resources.files("rnnlm.generation.web")
    heading = f"{facts['corpus']} · {config.cell.upper()} {config.num_layers}×{config.hidden_size}"
    weights_text = base64.b64encode(weights).decode("ascii")
    return fill_template(files.joinpath("page.html").read_text("utf-8"), {
        "GENERATOR": PAGE_MARK, "TITLE": html.escape(f"{heading} — rnnlm"), "HEADING": html.escape(heading),
        "META": script_json(meta), "WEIGHTS": weights_text, "ENGINE": files.joinpath("engine.js").read_text("utf-8"),
        "CELL": resources.files("rnnlm.model.cells").joinpath(f"{config.cell}.js").read_text("utf-8"),
        "UI": files.joinpath("ui.js").read_text("utf-8")}), len(weights_text)


@pytest.mark.parametrize("chars, bos_id, fp32, cell", [("\nab<", 0, False, "lstm"), ("ab<&", None, True, "gru")])
def test_the_web_page_is_its_template_filled_with_the_model_s_metadata_and_weights(chars, bos_id, fp32, cell):
    # The browser tests read the page through its code; this pins every value _page puts in it.  Kills the metadata
    # keys and values (-> "XX..XX" / upper case / None / dropped), fp32 -> "int8" / "fp32" swaps, the heading's and
    # title's text and escaping, bos_id (the newline's id, None without one), the weights' base64 and its length.
    import torch

    from rnnlm.core.config import ModelConfig
    from rnnlm.generation.export import _page, build_page
    from rnnlm.model.network import RNNLM

    torch.manual_seed(0)
    tokenizer = CharTokenizer(chars)
    module = RNNLM(ModelConfig(cell=cell, vocab_size=4, embed_size=3, hidden_size=5, dropout=0.0))
    facts = {"corpus": "<b>a&b</b>.txt", "val_bpc": 1.5, "checkpoint": "run/best.safetensors", "step": 12}
    expected, weights_len = _expected_web_page(module, tokenizer, facts, fp32, bos_id)
    assert _page(module, tokenizer, facts, fp32) == (expected, weights_len)
    assert build_page(module, tokenizer, facts, fp32=fp32) == expected
    if not fp32:
        assert build_page(module, tokenizer, facts) == expected  # int8 unless asked


def test_the_web_page_refuses_a_subword_model_and_an_int8_copy():
    # Kills _page's two messages -> None / "XX..XX", its getattr(tokenizer, "kind", None) -> "XXkindXX" / default
    # dropped, and the unknown tokenizer's name.
    import types

    import torch

    from rnnlm.core.config import ModelConfig
    from rnnlm.generation.export import _page
    from rnnlm.model.network import RNNLM

    module = RNNLM(ModelConfig(cell="rnn", vocab_size=2, embed_size=2, hidden_size=2, dropout=0.0))
    facts = {"corpus": "c", "val_bpc": None, "checkpoint": "r/b", "step": 0}
    for tokenizer, kind in ((types.SimpleNamespace(kind="bpe"), "bpe"), (object(), "unknown")):
        with pytest.raises(InputError, match=f"^export --format web needs a character model; this checkpoint uses a "
                                             f"{kind} \\(sentencepiece\\) tokenizer, whose encoder the page lacks$"):
            _page(module, tokenizer, facts, False)
    with pytest.raises(InputError, match="^export reads the float model: load the checkpoint again instead of its "
                                         "quantize_int8\\(\\) copy$"):
        _page(torch.nn.Linear(2, 2), CharTokenizer("ab"), facts, False)


# --- the copy check's matching (rnnlm/generation/copycheck.py) -----------------------------------------------------


def _copy_index(folder, *texts, fractions=(0.9, 0.1)):
    from rnnlm.generation.copycheck import CopyIndex, plan_index

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(texts):
        paths.append(folder / f"part{i}.txt")
        paths[-1].write_text(text, encoding="utf-8")
    return CopyIndex.open(plan_index(paths, fractions, None))


def test_the_copy_check_of_one_character_or_of_a_training_text_of_zero_or_one_byte(tmp_path):
    # Kills _matching_statistics's early return `m == 0 or n == 0` -> `and` (an empty training split: the search
    # would index an empty array), `m == 1` (one generated character is still looked up) and `n == 1` (a training
    # split of one byte is still searched).
    one = _copy_index(tmp_path / "one", "ab", fractions=(0.5, 0.5))
    assert len(one.text) == 1
    report = one.check("xa")
    assert (report.longest, report.longest_text, report.longest_start, report.longest_at.offset) == (1, "a", 1, 0)
    assert one.check("a").longest == 1
    empty = _copy_index(tmp_path / "empty", "a")
    assert len(empty.text) == 0
    report = empty.check("abc")
    assert (report.chars, report.longest, report.longest_at) == (3, 0, None)


def test_the_smallest_suffix_of_the_training_text_is_searched_too(tmp_path):
    # The binary search's bracket starts below the first suffix: kills lo = -1 -> +1 / -2, which never compare the
    # query with the smallest suffix (here the only one starting with a space).
    index = _copy_index(tmp_path, "zb ayx\nq", fractions=(0.8, 0.2))  # training text "zb ayx" (6 of 8 characters)
    assert bytes(index.text) == b"zb ayx"
    for query, longest in ((" a", 2), (" ay", 3), ("b a", 3), ("#", 0)):
        assert index.check(query).longest == longest, query


def test_the_copy_check_counts_utf8_widths_at_each_boundary(tmp_path):
    # U+0080, U+0800 and U+10000 are the first characters of 2, 3 and 4 bytes: kills `points >= 0x80` -> `> 0x80` /
    # `>= 129`, `>= 0x800` -> `> 0x800` / `>= 2049`, `>= 0x10000` -> `> 0x10000` / `>= 65537` (a wrong width moves
    # every later character's byte offset, so the span found is cut or misplaced).
    span = "Z\x80Y\u0800X\U00010000W"
    index = _copy_index(tmp_path, "abc " + span + " cba\n" * 10)
    report = index.check("#" + span + "#")
    assert (report.longest, report.longest_start, report.longest_text) == (len(span), 1, span)
    assert report.longest_at.offset == 4
    for char in ("\x80", "\u0800", "\U00010000"):
        report = index.check("#" + char + "#")
        assert (report.longest, report.longest_text) == (1, char), hex(ord(char))


def test_the_copy_check_takes_any_python_string_even_a_lone_surrogate(tmp_path):
    # What rnnlm reads with surrogateescape (a non-UTF-8 byte) can reach check(); kills both encode(...,
    # "surrogatepass") -> strict / "XXsurrogatepassXX" / "SURROGATEPASS" (UnicodeEncodeError or LookupError).
    index = _copy_index(tmp_path, "thou art king\n" * 20)
    report = index.check("thou art\udce9king")
    assert (report.chars, report.longest, report.longest_text) == (13, 8, "thou art")


def test_an_empty_or_short_text_has_no_windows_and_starts_at_0(tmp_path):
    # Kills `best = argmax if m else 0` -> else 1, and the windows' `if m >= w` -> `or True` (a nan share for a text
    # shorter than the window) / `m > w` (a text exactly one window long has one window).
    line = "thou art king of the night and morrow"
    index = _copy_index(tmp_path, (line + "\n") * 20)
    empty = index.check("")
    assert (empty.chars, empty.longest, empty.longest_start, empty.longest_text) == (0, 0, 0, "")
    assert empty.windows == {20: None, 40: None}
    assert index.check("thou art").windows == {20: None, 40: None}
    assert index.check(line[:20]).windows == {20: 1.0, 40: None}
    assert index.check("#" * 19 + "a").windows == {20: 0.0, 40: None}
    assert index.check(line[:40] if len(line) >= 40 else (line + "\n" + line)[:40]).windows == {20: 1.0, 40: 1.0}


def test_a_copied_line_counts_when_the_match_ends_at_its_end_and_lines_after_the_second_are_placed(tmp_path):
    # Kills `matched[start] >= len(line)` -> `>` (a copied last line, with nothing after it to match) and
    # `start += len(line) + 1` -> `start = ...` (the third line's start would be the second's length).
    corpus = "".join(f"line {i} of the training text, long enough\n" for i in range(30))
    index = _copy_index(tmp_path, corpus)
    copied = "line 7 of the training text, long enough"
    report = index.check("#####\n%%%%%%%%%%%%%%%%%%%%%%%%%\n" + copied)
    assert report.lines_checked == 2 and [text for text, _ in report.copied_lines] == [copied]
    assert report.copied_lines[0][1].offset == corpus.index(copied)


def test_a_span_at_the_very_start_of_the_second_file_is_placed_in_it(tmp_path):
    # file_starts holds each file's first byte; a match starting exactly there belongs to that file.  Kills
    # searchsorted(..., side="right") -> the default "left" (the previous file, line and all).
    first = "thou art king\n" * 5
    second = "QZQZ a unique opening\n" + "and the night\n" * 20
    index = _copy_index(tmp_path, first, second)
    place = index.check("#QZQZ a unique").longest_at
    assert (place.file, place.line, place.offset, str(place)) == ("part1.txt", 1, len(first) + 1, "part1.txt:1")


# --- beam search's stop (rnnlm/generation/beam.py) -----------------------------------------------------------------


def test_a_hypothesis_is_cut_right_after_the_first_stop_even_at_its_first_character():
    # A subword token can hold the stop string twice, and the first generated character can be the stop itself.
    # Kills _finish_stopped's text.find(stop) -> rfind and `cut >= 0` -> `> 0` / `>= 1`.
    import torch

    from rnnlm.generation.beam import _finish_stopped

    tok = CharTokenizer("\nabx")
    rows = [tok.encode(text).tolist() for text in ("xaxa", "axxx", "xxxx")]
    finished = []
    live = _finish_stopped(tok, torch.tensor(rows), torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([4.0, 4.0, 4.0]),
                           "a", finished)
    assert live.tolist() == [False, False, True]
    assert [(h.text, h.ids, h.logprob, h.chars) for h in finished] == [("xa", rows[0], -1.0, 4), ("a", rows[1], -2.0, 4)]


def _bigram_net(v: int, table: dict[int, dict[int, float]]):
    """tests/test_beam.py's bigram model as an RNNLM: next-id probabilities per current id."""
    from test_beam import bigram_net  # tests/ is on the path (conftest.py)

    return bigram_net(v, table)[0]


def test_beam_search_refuses_bad_sizes_by_name():
    # Kills the checks' `or` -> `and` (beam=True, 2.0; length=True, 2.5, 0 pass or fail with a TypeError),
    # `length < 1` -> `<= 1` / `< 2` (length 1 is valid), and the length and stop messages -> None / "XX..XX".
    from rnnlm.generation.beam import beam_search

    tok = CharTokenizer("\nax")
    net = _bigram_net(3, {0: {1: 0.9}, 1: {2: 0.9}})
    for beam in (True, 2.0, 0):
        with pytest.raises(InputError, match=f"^beam must be a positive integer, got {beam!r}$"):
            beam_search(net, tok, "a", beam=beam, length=2)
    for length in (True, 2.5, 0):
        with pytest.raises(InputError, match=f"^length must be a positive integer, got {length!r}$"):
            beam_search(net, tok, "a", beam=2, length=length)
    with pytest.raises(InputError, match="^stop string must not be empty$"):
        beam_search(net, tok, "a", beam=2, length=2, stop="")
    assert [h.text for h in beam_search(net, tok, "a", beam=1, length=1)] == ["x"]


def test_beam_search_starts_an_empty_prompt_from_bos_and_returns_each_hypothesis_ids():
    # Kills prompt_tensor(..., bos_id, ...) -> None (id 0 instead of the one given) and the live hypotheses'
    # Hypothesis(text, row, ...) -> (text, None, ...).
    from rnnlm.generation.beam import beam_search

    tok = CharTokenizer("\nax")
    net = _bigram_net(3, {0: {1: 0.9}, 1: {2: 0.9}, 2: {0: 0.9}})
    (best,) = beam_search(net, tok, "", beam=1, length=2, bos_id=1)  # from "a": "x", then "\n"
    assert (best.text, best.ids, best.chars) == ("x\n", [2, 0], 2)
    assert beam_search(net, tok, "", beam=1, length=2, bos_id=0)[0].text == "ax"


def test_beam_search_stops_stepping_once_beam_hypotheses_have_finished():
    # "\n" → a .5, b .3, x .2; a → x .6, a .4; b → x .6, b .4.  Beam 3, stop "x": step 1 keeps a, b, x ("x" is
    # finished), step 2 keeps ax, aa, bx: "ax" and "bx" finish, three are finished and the search ends with no
    # further model call.  Kills `len(finished) >= beam` -> `>`, `step + 1 < length` -> `step - 1 <` / `<=` (a
    # wasted model call after the last step), and `finished += live` -> `finished = live` (a length-1 search
    # would lose "x").
    from rnnlm.generation.beam import beam_search

    tok = CharTokenizer("\nabx")
    net = _bigram_net(4, {0: {1: 0.5, 2: 0.3, 3: 0.2}, 1: {3: 0.6, 1: 0.4}, 2: {3: 0.6, 2: 0.4}})
    calls = []
    net.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    results = beam_search(net, tok, "", beam=3, length=5, num_results=3, stop="x", bos_id=0)
    assert [h.text for h in results] == ["ax", "bx", "x"] and len(calls) == 2
    calls.clear()
    results = beam_search(net, tok, "", beam=3, length=1, num_results=3, stop="x", bos_id=0)
    assert [(h.text, h.ids) for h in results] == [("a", [1]), ("b", [2]), ("x", [3])] and len(calls) == 1
    calls.clear()
    assert len(beam_search(net, tok, "", beam=2, length=4, bos_id=0)[0].text) == 4 and len(calls) == 4


class _PairTokenizer:
    """Ids 0..3 spell "\\n", "a", "bb", "x": a subword-like vocabulary whose tokens differ in length."""

    pieces = ["\n", "a", "bb", "x"]
    vocab_size = 4
    unk_id = None

    def encode(self, text, unknown="error"):
        return np.array([self.pieces.index(text)] if text else [], dtype=np.int64)

    def decode(self, ids):
        return "".join(self.pieces[int(i)] for i in ids)

    def char_lengths(self):
        return np.array([len(p) for p in self.pieces])


def test_beam_search_scores_per_character_when_tokens_spell_several():
    # From "\n": "a" has p .5 (-0.69 per character), "bb" p .45 but -0.40 per character, so "bb" wins.  Kills
    # lengths = char_lengths() -> None, `lengths is None` -> `or True`, as_tensor(np.asarray(lengths)) -> None /
    # dropped / asarray(None), total / chars -> total * chars, clamp(min=1) -> clamp(min=2).
    import math

    from rnnlm.generation.beam import Hypothesis, beam_search

    net = _bigram_net(4, {0: {1: 0.5, 2: 0.45, 3: 0.05}})
    (best,) = beam_search(net, _PairTokenizer(), "", beam=1, length=1, bos_id=0)  # the step's own choice
    assert (best.text, best.ids, best.chars) == ("bb", [2], 2)
    assert best.logprob == pytest.approx(math.log(0.45), abs=1e-4)
    assert best.logprob_per_char == pytest.approx(math.log(0.45) / 2, abs=1e-4)
    # Kills logprob_per_char's max(chars, 1) -> max(chars, 2).
    assert Hypothesis("a", [1], -1.5, 1).logprob_per_char == -1.5
    assert Hypothesis("", [], -1.5, 0).logprob_per_char == -1.5
