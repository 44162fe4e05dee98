"""Corpus reading: validation messages with exact byte offsets, chunked counting and encoding, the id cache."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rnnlm.data import corpus as corpus_mod
from rnnlm.data.corpus import encode_char_corpus, read_text, scan_corpus
from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers.char import CharTokenizer

TEXT = "Hello, world!\n안녕하세요 🙂 café e\u0301\tend\r\n" * 7


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _scanned(tmp_path: Path):
    """TEXT written to a file, scanned, with its char tokenizer and a cache folder."""
    path = _write(tmp_path / "a.txt", TEXT)
    info = scan_corpus([path])
    return path, tmp_path / "cache", info, CharTokenizer.from_counts(info.codepoints, info.counts)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=f"corpus file not found: {tmp_path / 'nope.txt'}$"):
        scan_corpus([tmp_path / "nope.txt"])


def test_directory(tmp_path):
    with pytest.raises(InputError, match=r"is a directory; pass its files, e\.g\. .*/\*\.txt"):
        scan_corpus([tmp_path])


def test_empty_file(tmp_path):
    with pytest.raises(InputError, match="corpus file is empty"):
        read_text([_write(tmp_path / "empty.txt", b"")])


def test_missing_second_file_fails_before_reading(tmp_path):
    good = _write(tmp_path / "a.txt", TEXT)
    with pytest.raises(InputError, match="not found"):
        scan_corpus([good, tmp_path / "b.txt"])


@pytest.mark.parametrize("chunk", [3, 7, 1 << 20])
def test_binary_file_names_the_nul_offset(tmp_path, chunk):
    path = _write(tmp_path / "bin.dat", "héllo wörld".encode() + b"\x00\x01\x02")
    with pytest.raises(InputError, match=r"bin\.dat looks binary \(NUL byte at offset 13\)"):
        scan_corpus([path], chunk_bytes=chunk)


@pytest.mark.parametrize("chunk", [1, 2, 5, 6, 1 << 20])
@pytest.mark.parametrize("prefix, bad, offset", [
    ("abc", b"\xff", 3),                   # a byte that never occurs in UTF-8
    ("한국", b"\xe3\x41", 6),              # a lead byte followed by ASCII
    ("🙂🙂", b"\xf0\x9f\x99", 8),          # a 4-byte character cut off at the end of the file
    ("é" * 3, b"\x80", 6),                 # a stray continuation byte
])
def test_bad_utf8_names_the_byte_offset(tmp_path, chunk, prefix, bad, offset):
    tail = b"" if prefix.startswith("🙂") else b" more text"
    path = _write(tmp_path / "latin.txt", prefix.encode() + bad + tail)
    with pytest.raises(InputError, match=rf"latin\.txt is not valid UTF-8 at byte offset {offset}\b"):
        scan_corpus([path], chunk_bytes=chunk)


def test_bad_utf8_after_many_chunks(tmp_path):
    good = ("ab한🙂" * 100).encode()
    path = _write(tmp_path / "late.txt", good + b"\xc3\x28")
    with pytest.raises(InputError, match=f"at byte offset {len(good)}\\b"):
        scan_corpus([path], chunk_bytes=64)


def test_files_join_with_one_newline(tmp_path):
    a = _write(tmp_path / "a.txt", "first\n")
    b = _write(tmp_path / "b.txt", "second")
    assert read_text([a, b]) == "first\n\nsecond"
    info = scan_corpus([a, b])
    assert info.num_chars == len("first\n\nsecond")
    assert info.to_dict()["names"] == ["a.txt", "b.txt"] and info.to_dict()["sizes"] == [6, 6]
    assert info.sha256[1] == "16367aacb67a4a017c8da8ab95682ccb390863780f7114dda0a0e0c55644c7c4"  # sha256 of "second"


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_counts_match_a_counter(tmp_path, chunk):
    a = _write(tmp_path / "a.txt", TEXT)
    b = _write(tmp_path / "b.txt", "🙂 zz")
    info = scan_corpus([a, b], chunk_bytes=chunk)
    expected = Counter(TEXT + "\n" + "🙂 zz")
    assert dict(zip(map(chr, info.codepoints.tolist()), info.counts.tolist())) == dict(expected)
    assert info.num_chars == sum(expected.values())


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_chunked_encoding_equals_whole_text_encoding(tmp_path, chunk):
    paths = [_write(tmp_path / "a.txt", TEXT), _write(tmp_path / "b.txt", "끝🙂")]
    info = scan_corpus(paths, chunk_bytes=chunk)
    tok = CharTokenizer.from_counts(info.codepoints, info.counts)
    ids = encode_char_corpus(info, tok, None, chunk_bytes=chunk)
    assert ids.dtype == np.uint8
    assert np.array_equal(ids, tok.encode(read_text(paths)))


def test_rare_chars_encode_as_unk(tmp_path):
    path = _write(tmp_path / "a.txt", "aaaa bbbb ü")
    info = scan_corpus([path])
    tok = CharTokenizer.from_counts(info.codepoints, info.counts, min_char_count=2)
    assert tok.unknown_count == 1
    assert tok.decode(encode_char_corpus(info, tok)) == "aaaa bbbb \ufffd"


def test_characters_outside_a_given_vocabulary_are_an_error(tmp_path):
    info = scan_corpus([_write(tmp_path / "a.txt", "abc ü")])
    with pytest.raises(InputError, match=r"'ü' \(U\+00FC\)"):
        encode_char_corpus(info, CharTokenizer.from_text("abc "))


def test_cache_is_reused_and_memory_mapped(tmp_path, monkeypatch):
    path, cache, info, tok = _scanned(tmp_path)
    first = encode_char_corpus(info, tok, cache)
    files = list(cache.glob("ids-*.npy"))
    assert len(files) == 1 and isinstance(first, np.memmap)
    assert not list(cache.glob("*.tmp"))

    def no_reading(*args, **kwargs):
        raise AssertionError("the cached ids were re-encoded")

    rescanned = scan_corpus([path])
    monkeypatch.setattr(corpus_mod, "iter_text", no_reading)
    again = encode_char_corpus(rescanned, tok, cache)
    assert np.array_equal(again, first) and isinstance(again, np.memmap)


def test_cache_is_invalidated_when_the_file_changes(tmp_path):
    path, cache, info, tok = _scanned(tmp_path)
    encode_char_corpus(info, tok, cache)
    stat = path.stat()
    _write(path, TEXT.replace("world", "dlrow", 1))  # same size, same characters
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime
    changed = scan_corpus([path])
    ids = encode_char_corpus(changed, tok, cache)
    assert tok.decode(ids) == read_text([path]) != TEXT
    assert len(list(cache.glob("ids-*.npy"))) == 2


def test_corrupt_cache_is_rebuilt(tmp_path):
    _, cache, info, tok = _scanned(tmp_path)
    encode_char_corpus(info, tok, cache)
    cached = next(cache.glob("ids-*.npy"))
    cached.write_bytes(cached.read_bytes()[:40])
    assert tok.decode(encode_char_corpus(info, tok, cache)) == TEXT


def test_corpus_changed_between_scan_and_encode(tmp_path):
    path, _, info, tok = _scanned(tmp_path)
    _write(path, TEXT + TEXT)
    with pytest.raises(InputError, match="changed while"):
        encode_char_corpus(info, tok)


def test_second_scan_with_a_cache_only_hashes(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.txt", TEXT)
    cache = tmp_path / "cache"
    first = scan_corpus([path], cache_dir=cache)
    assert len(list(cache.glob("scan-*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cached scan was not used")

    monkeypatch.setattr(corpus_mod, "iter_text", no_decoding)
    again = scan_corpus([path], cache_dir=cache)
    assert again.to_dict() == first.to_dict()
    assert np.array_equal(again.codepoints, first.codepoints) and np.array_equal(again.counts, first.counts)


def test_scan_cache_misses_on_changed_or_damaged_files(tmp_path):
    path = _write(tmp_path / "a.txt", TEXT)
    cache = tmp_path / "cache"
    scan_corpus([path], cache_dir=cache)
    _write(path, TEXT.replace("world", "wörld", 1))
    changed = scan_corpus([path], cache_dir=cache)
    assert changed.to_dict() == scan_corpus([path]).to_dict() and ord("ö") in changed.codepoints
    for cached in cache.glob("scan-*.npz"):
        cached.write_bytes(cached.read_bytes()[:30])
    assert scan_corpus([path], cache_dir=cache).num_chars == len(read_text([path]))


def test_tinyshakespeare_scans_encodes_and_round_trips(tinyshakespeare, tmp_path):
    """The real corpus (../shared, skipped without it): its size and alphabet, and ids that decode to its text."""
    info = scan_corpus([tinyshakespeare])
    assert info.num_chars == 1_115_394 and len(info.codepoints) == 65
    tokenizer = CharTokenizer.from_counts(info.codepoints, info.counts)
    ids = encode_char_corpus(info, tokenizer, tmp_path / "cache")
    assert len(ids) == info.num_chars
    assert tokenizer.decode(np.asarray(ids)) == tinyshakespeare.read_text(encoding="utf-8")
