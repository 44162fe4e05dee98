"""Time char-corpus encoding on a generated mixed ASCII/non-ASCII UTF-8 corpus (default 100 MB).

Checks the corpus targets: scan + encode ≤ 2 s, peak RSS growth ≤ 4× the corpus,
a second run (hash the file, reuse the cached scan and ids) ≤ 0.2 s.  Prints one line; the corpus and cache live in a temp
directory that is deleted afterwards.

    python scripts/bench_encode.py [--mb 100]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnlm.data.corpus import CHUNK_BYTES, encode_char_corpus, scan_corpus  # noqa: E402
from rnnlm.data.tokenizers.char import CharTokenizer  # noqa: E402

WORDS = ("the quick brown fox jumps over the lazy dog and then some more plain English words "
         "follow here café naïve façade déjà-vu Ünïcödé 안녕하세요 세계 한국어 텍스트 日本語のテキスト "
         "Привет мир 🙂 🚀 ∑ — ✓").split()


def write_corpus(path: Path, size_bytes: int, seed: int = 0) -> None:
    """Random words (mostly ASCII, some 2-, 3- and 4-byte characters) in lines of ~80 characters."""
    rng = np.random.default_rng(seed)
    block = " ".join(rng.choice(WORDS, 200_000).tolist())
    block = "\n".join(block[i : i + 80] for i in range(0, len(block), 80)).encode() + b"\n"
    with path.open("wb") as f:
        written = 0
        while written < size_bytes:
            f.write(block[: size_bytes - written].decode(errors="ignore").encode())  # never cut a character
            written += len(block)


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> int:
    """Reset the kernel's high-water mark (Linux) so generating the corpus does not count; returns the RSS now."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    try:
        return _status_bytes("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size in MB (10^6 bytes)")
    parser.add_argument("--chunk-mb", type=float, default=CHUNK_BYTES / 2**20, help="read size in MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "mixed.txt"
        write_corpus(corpus, int(args.mb * 1e6))
        size = corpus.stat().st_size
        rss_before = reset_peak_rss()
        chunk = int(args.chunk_mb * 2**20)
        start = time.perf_counter()
        info = scan_corpus([corpus], chunk)
        scanned = time.perf_counter()
        tokenizer = CharTokenizer.from_counts(info.codepoints, info.counts)
        ids = encode_char_corpus(info, tokenizer, None, chunk)
        encoded = time.perf_counter()
        rss_growth = peak_rss_bytes() - rss_before
        cache = Path(tmp) / "cache"
        encode_char_corpus(scan_corpus([corpus], chunk, cache), tokenizer, cache)  # what a first run leaves
        reload_start = time.perf_counter()  # a second run: hash the file, load its scan, map its ids
        cached = encode_char_corpus(scan_corpus([corpus], chunk, cache), tokenizer, cache)
        reload_s = time.perf_counter() - reload_start
        assert np.array_equal(cached[:1000], ids[:1000]) and len(cached) == len(ids)
        print(f"encode (chunk {args.chunk_mb:g} MiB) {size / 1e6:.0f} MB ({info.num_chars / 1e6:.1f} M chars, "
              f"vocab {tokenizer.vocab_size}, "
              f"{ids.dtype}): scan {scanned - start:.2f} s + encode {encoded - scanned:.2f} s = "
              f"{encoded - start:.2f} s; peak RSS growth {rss_growth / 1e6:.0f} MB ({rss_growth / size:.2f}x corpus); "
              f"second run (hash + cached scan + memory-mapped ids) {reload_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
