"""Copy check: exact spans and places against brute force, the content-keyed cache, and the CLI around it."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_MODEL, TINY_TRAIN
from rnnlm.cli import cli
from rnnlm.generation.copycheck import CopyIndex, plan_index

WORDS = ["thou", "art", "king", "of", "the", "night", "and", "morrow", "sweet", "lord", "hath", "made", "me", "so"]


def prose(seed: int, lines: int) -> str:
    """Deterministic verse-like text from a small vocabulary: lowercase letters, spaces and newlines only."""
    rng = random.Random(seed)
    return "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + "\n" for _ in range(lines))


def index_of(tmp_path: Path, *texts: str, fractions=(0.9, 0.1), cache: Path | None = None) -> CopyIndex:
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"part{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return CopyIndex.open(plan_index(paths, fractions, cache))


def test_a_planted_passage_is_found_with_its_exact_length_and_place(tmp_path):
    corpus = prose(0, 400)
    index = index_of(tmp_path, corpus)
    offset = corpus.index("\n", 5000) + 1  # a line start, so the line number is exact
    passage = corpus[offset : offset + 57]
    generated = "#1#2#3#4#5" + passage + "%9%8%7"  # '#', '%' and digits never occur in the corpus
    report = index.check(generated)
    assert (report.longest, report.longest_start, report.longest_text) == (57, 10, passage)
    assert report.longest_at.offset == offset
    assert (report.longest_at.file, report.longest_at.line) == ("part0.txt", corpus[:offset].count("\n") + 1)
    windows = len(generated) - 20 + 1
    assert report.windows[20] == pytest.approx((57 - 20 + 1) / windows)
    assert report.windows[40] == pytest.approx((57 - 40 + 1) / (len(generated) - 40 + 1))


def test_a_text_that_shares_nothing_reports_zero(tmp_path):
    report = index_of(tmp_path, prose(1, 100)).check("0123456789#%&QWERTYUIOPASDFGHJKLZX" * 4)
    assert report.longest == 0 and report.longest_at is None
    assert report.windows == {20: 0.0, 40: 0.0} and report.copied_lines == [] and report.lines_checked == 1
    assert index_of(tmp_path, prose(1, 100)).check("").chars == 0


def test_copied_lines_need_twenty_non_space_characters_and_say_where(tmp_path):
    corpus = prose(2, 300)
    long_line = next(l for l in corpus.splitlines() if sum(not c.isspace() for c in l) >= 25)
    short = "thou art king of the"  # 16 non-space characters, found but too short to count
    report = index_of(tmp_path, corpus, fractions=(0.99, 0.01)).check(f"{short}\n{long_line}\n#### not in it at all ####")
    assert report.lines_checked == 2
    assert [text for text, _ in report.copied_lines] == [long_line]
    place = report.copied_lines[0][1]
    assert corpus[place.offset : place.offset + len(long_line)] == long_line


def test_matches_brute_force_on_unicode_text_across_two_files(tmp_path):
    rng = random.Random(3)
    alphabet = "ab \nçé한🙂"
    for trial in range(12):
        first = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 150)))
        second = "".join(rng.choice(alphabet[: rng.randint(2, 8)]) for _ in range(rng.randint(1, 150)))
        index = index_of(tmp_path, first, second, fractions=(0.8, 0.2))
        train = (first + "\n" + second)[: int(0.8 * (len(first) + 1 + len(second)))]  # 2 characters or more
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 50)))
        start = rng.randrange(len(train))
        query += train[start : start + rng.randint(1, 30)]  # so every query has a place to check
        report = index.check(query)
        best = max(j - i for i in range(len(query)) for j in range(i + 1, len(query) + 1) if query[i:j] in train)
        assert report.longest == best, trial
        at = report.longest_at
        assert train[at.offset : at.offset + best] == report.longest_text
        in_second = at.offset > len(first)
        assert at.file == ("part1.txt" if in_second else "part0.txt")
        line_start = len(first) + 1 if in_second else 0
        assert at.line == train[line_start : at.offset].count("\n") + 1
        if len(query) >= 20:
            found = [query[i : i + 20] in train for i in range(len(query) - 19)]
            assert report.windows[20] == pytest.approx(sum(found) / len(found))


def test_the_cached_index_follows_content_not_mtime(tmp_path):
    cache = tmp_path / "cache"
    path = tmp_path / "corpus.txt"
    old = prose(4, 200)
    path.write_text(old, encoding="utf-8")
    planted = "zebra quagga okapi " * 3
    new = old[:1000] + planted + old[1000 + len(planted) :]  # same size
    calls = []

    def progress(name, done, total):
        calls.append(name)

    plan = plan_index([path], (0.9, 0.1), cache)
    assert not plan.cached
    CopyIndex.open(plan, progress)
    assert calls and plan_index([path], (0.9, 0.1), cache).cached
    CopyIndex.open(plan_index([path], (0.8, 0.2), cache))  # another split of the same text: a second index
    assert plan_index([path], (0.9, 0.1), cache).cached and len(list(cache.glob("copy-*.json"))) == 2
    os.utime(path, (1, 1))  # a new mtime, same content: still the same index, no rebuild
    calls.clear()
    again = CopyIndex.open(plan_index([path], (0.9, 0.1), cache), progress)
    assert calls == [] and again.check(planted).longest < 10
    stat = path.stat()
    path.write_text(new, encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: only the content tells
    edited = plan_index([path], (0.9, 0.1), cache)
    assert edited.key != plan.key and not edited.cached
    assert CopyIndex.open(edited, progress).check(planted).longest == len(planted)
    assert calls and len(list(cache.glob("copy-*.json"))) == 1  # both indexes of the old text were removed


def test_a_shared_index_names_the_files_of_the_run_asking(tmp_path):
    """Corpora with equal bytes share one cached index (it is keyed by content), so its places must name the
    files of the plan that opened it, not those of the run that built it first."""
    cache = tmp_path / "cache"
    corpus = prose(6, 300)
    rep, book = tmp_path / "rep.txt", tmp_path / "elsewhere" / "book.txt"
    book.parent.mkdir()
    for path in (rep, book):
        path.write_text(corpus, encoding="utf-8")
    line = next(l for l in corpus.splitlines()[100:] if sum(not c.isspace() for c in l) >= 25)
    generated = f"{line}\n#"  # '#' never occurs in the corpus: the line is the longest span and a copied line
    calls = []
    CopyIndex.open(plan_index([rep], (0.9, 0.1), cache), lambda name, done, total: calls.append(name))
    shared = plan_index([book], (0.9, 0.1), cache)
    assert calls and shared.cached  # the index rep.txt built serves book.txt
    calls.clear()
    for path, index in ((book, CopyIndex.open(shared, lambda name, done, total: calls.append(name))),
                        (rep, CopyIndex.open(plan_index([rep], (0.9, 0.1), cache)))):
        report = index.check(generated)
        assert report.longest_text == line + "\n" and [text for text, _ in report.copied_lines] == [line]
        assert report.longest_at.file == report.copied_lines[0][1].file == path.name
        assert str(report.longest_at) == f"{path.name}:{corpus[: report.longest_at.offset].count(chr(10)) + 1}"
    assert calls == []  # no rebuild


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny trained run whose corpus this module may move and edit."""
    from rnnlm.training.run import train
    from rnnlm.core.config import ModelConfig, TrainConfig

    root = tmp_path_factory.mktemp("copy_run")
    corpus = root / "verse.txt"
    corpus.write_text(prose(5, 300), encoding="utf-8")
    train(corpus, model=ModelConfig(cell="gru", **TINY_MODEL), config=TrainConfig(**TINY_TRAIN), out=root / "run",
          threads=1)
    return root / "run"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_generate_check_copy_json_reports_the_generated_text_only(run_dir):
    result = invoke("generate", run_dir, "--prompt", "thou art king of the night", "--length", 120, "--seed", 1,
                    "--json", "--check-copy", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    copy = record["copy"]
    assert copy["chars"] == 120 == len(record["text"]) - len(record["prompt"])
    assert set(copy) >= {"longest", "windows_20", "windows_40", "lines_checked", "copied_lines"}
    longest = copy["longest"]
    assert longest["chars"] > 0  # every character the model writes occurs in its training text
    generated = record["text"][len(record["prompt"]) :]
    assert generated[longest["start"] : longest["start"] + longest["chars"]] == longest["text"]
    assert longest["text"] in (run_dir.parent / "verse.txt").read_text()


@pytest.mark.parametrize("echo", ["--echo", "--no-echo"])
def test_streamed_generate_checks_the_generated_text_not_the_prompt(run_dir, echo):
    """A training line as the prompt: checked with the sample, it would be the longest span and a copied line.
    Without --echo the output starts with the generated text, so nothing is skipped."""
    line = next(l for l in (run_dir.parent / "verse.txt").read_text().splitlines() if len(l.replace(" ", "")) >= 30)
    result = invoke("generate", run_dir, "--prompt", line, "--length", 60, "--seed", 1, echo, "--check-copy",
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    sample, figures = result.stdout.split("\ncopy check ")
    assert sample.startswith(line) == (echo == "--echo")
    assert figures.startswith("(60 generated characters): longest verbatim span ")
    assert int(figures.split()[6]) < len(line) and repr(line) not in figures


def test_a_moved_corpus_is_an_error_naming_corpus_and_corpus_fixes_it(run_dir, tmp_path):
    corpus = run_dir.parent / "verse.txt"
    moved = tmp_path / "verse.txt"
    corpus.rename(moved)
    try:
        result = invoke("generate", run_dir, "--length", 50, "--seed", 1, "--check-copy", "--device", "cpu")
        assert result.exit_code == 2 and "--corpus" in result.output and "Traceback" not in result.output
        result = invoke("generate", run_dir, "--length", 50, "--seed", 1, "--check-copy", "--corpus", moved,
                        "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert "copy check (50 generated characters): longest verbatim span" in result.stdout
    finally:
        moved.rename(corpus)


def test_an_edited_corpus_is_an_error_unless_given_explicitly(run_dir):
    corpus = run_dir.parent / "verse.txt"
    original = corpus.read_text()
    corpus.write_text(original.replace("thou", "thee"), encoding="utf-8")
    try:
        result = invoke("generate", run_dir, "--length", 30, "--check-copy", "--device", "cpu")
        assert result.exit_code == 2 and "changed since training" in result.output
        assert invoke("generate", run_dir, "--length", 30, "--check-copy", "--corpus", corpus,
                      "--device", "cpu").exit_code == 0
    finally:
        corpus.write_text(original, encoding="utf-8")


def test_train_prints_copy_figures_or_the_command_when_the_split_is_big(tiny_corpus, tmp_path, monkeypatch):
    flags = ["--hidden", 16, "--embed", 8, "--bptt", 8, "--batch-size", 4, "--precision", "fp32", "--threads", 1,
             "--max-steps", 3]
    result = invoke("train", tiny_corpus, "--out", tmp_path / "a", *flags)
    assert result.exit_code == 0, result.output
    assert "copy check of a 1,000-char sample (temperature 0.8, seed 0): longest verbatim span" in result.stderr
    monkeypatch.setattr("rnnlm.generation.copycheck.CHEAP_TRAIN_CHARS", 100)
    result = invoke("train", tiny_corpus, "--out", tmp_path / "b", "--split", "0.8,0.2", *flags)
    assert result.exit_code == 0, result.output
    assert f"copy check: rnnlm generate {tmp_path / 'b'} --length 2000 --check-copy" in result.stderr
