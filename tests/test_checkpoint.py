import errno
import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from rnnlm.core.checkpoint import load_checkpoint, optimizer_tensors, restore_optimizer, save_checkpoint
from rnnlm.core.errors import InputError, RnnlmError


def _save(path, **meta):
    tensors = {"model.w": torch.randn(3, 4), "model.b": torch.arange(5, dtype=torch.bfloat16)}
    save_checkpoint(path, tensors, {"note": "x", **meta})
    return tensors


def test_round_trip_keeps_tensors_and_meta(tmp_path):
    tensors = _save(tmp_path / "a.safetensors", step=7)
    meta, loaded = load_checkpoint(tmp_path / "a.safetensors")
    assert meta["step"] == 7 and meta["format"] == "rnnlm-checkpoint"
    assert all(torch.equal(tensors[k], loaded[k]) for k in tensors)
    assert not list(tmp_path.glob("*.tmp"))


class _Evil:
    def __reduce__(self):
        return (open, ("pwned.txt", "w"))


def test_malicious_pickle_is_refused_and_never_run(tmp_path):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"model": _Evil()}))
    with pytest.raises(InputError, match="pickle") as info:
        load_checkpoint(path)
    assert "never loaded" in str(info.value)
    assert not (tmp_path / "pwned.txt").exists()
    torch.save({"x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="torch.save"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("cut", [0.3, 0.99])
def test_truncated_file_says_corrupted(tmp_path, cut):
    path = tmp_path / "a.safetensors"
    _save(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError, match="corrupted checkpoint|not a checkpoint"):
        load_checkpoint(path)


def test_flipped_byte_fails_checksum(tmp_path):
    path = tmp_path / "a.safetensors"
    _save(path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        load_checkpoint(path)


def test_foreign_safetensors_and_newer_version(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(InputError, match="another program"):
        load_checkpoint(tmp_path / "other.safetensors")
    save_file({"w": torch.zeros(2)}, tmp_path / "new.safetensors",
              metadata={"rnnlm": json.dumps({"format": "rnnlm-checkpoint", "version": 99})})
    with pytest.raises(InputError, match="newer"):
        load_checkpoint(tmp_path / "new.safetensors")
    (tmp_path / "text.safetensors").write_text("hello world, not a checkpoint")
    with pytest.raises(InputError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "text.safetensors")
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def _edited_header(tmp_path, corpus_text, **model_edits):
    """A checkpoint whose header's model config was edited after saving: tensors and checksum as written.

    The checksum covers the tensors only, so this is what a hand-edited header
    looks like to the loader.
    """
    from safetensors import safe_open

    from rnnlm.core.config import ModelConfig, TrainConfig
    from rnnlm.model.network import RNNLM
    from rnnlm.data.tokenizers.char import CharTokenizer

    tokenizer = CharTokenizer.from_text(corpus_text)
    config = ModelConfig(cell="lstm", hidden_size=32, embed_size=16, num_layers=1, vocab_size=tokenizer.vocab_size)
    tensors = {f"model.{k}": v for k, v in RNNLM(config).state_dict().items()}
    meta = {"config": {"model": config.to_dict(), "train": TrainConfig().to_dict()}, "tokenizer": tokenizer.to_dict()}
    path = save_checkpoint(tmp_path / "edited.safetensors", tensors, meta)
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["rnnlm"])
        kept = {k: f.get_tensor(k) for k in f.keys()}
    header["config"]["model"].update(model_edits)
    save_file(kept, str(path), metadata={"rnnlm": json.dumps(header)})
    return path


@pytest.mark.parametrize("edits, expected", [
    ({"hidden_size": 64}, ("tensor model.rnn.weight_ih_l0 has shape (128, 16) but the header's config implies "
                           "(256, 16) (and 4 more tensors differ)")),
    ({"num_layers": 2}, "the header's config implies a tensor model.rnn.weight_ih_l1 that the file lacks"),
])
def test_a_header_edited_to_another_size_is_one_line_naming_the_tensor(tmp_path, tiny_corpus, edits, expected):
    from click.testing import CliRunner

    from rnnlm.cli import cli
    from rnnlm.generation.language_model import load

    path = _edited_header(tmp_path, tiny_corpus.read_text(encoding="utf-8"), **edits)
    load_checkpoint(path)  # the checksum still holds: only the header changed
    with pytest.raises(InputError) as info:
        load(path, device="cpu")
    assert expected in str(info.value) and "edited" in str(info.value) and "\n" not in str(info.value)
    for args in (["generate", str(path), "--length", "5"],  # lm.load
                 ["train", str(tiny_corpus), "--init-from", str(path), "--max-steps", "1",  # api.train
                  "--bptt", "8", "--batch-size", "4", "--out", str(tmp_path / "tuned"), "--precision", "fp32"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert result.output.count("error:") == 1 and expected in result.output and "Traceback" not in result.output
        assert "size mismatch" not in result.output  # torch's own per-tensor lines


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.safetensors"
    old = _save(path, step=1)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RnnlmError, match="disk full.*intact"):
        _save(path, step=2)
    monkeypatch.undo()
    meta, loaded = load_checkpoint(path)
    assert meta["step"] == 1 and torch.equal(loaded["model.w"], old["model.w"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_optimizer_state_round_trips():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, groups = optimizer_tensors(opt)
    json.dumps(groups)
    opt2 = torch.optim.AdamW(model.parameters(), lr=0.5)
    restore_optimizer(opt2, tensors, groups)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx in a["state"]:
        for key in a["state"][idx]:
            assert torch.equal(torch.as_tensor(a["state"][idx][key]), torch.as_tensor(b["state"][idx][key]))


def test_header_length_starting_with_pickle_or_zip_magic_still_loads(tmp_path, monkeypatch):
    """A safetensors header length whose low byte is 0x80 (or bytes 'PK') is not a pickle."""
    for pad in range(0, 600, 7):
        path = tmp_path / "a.safetensors"
        save_checkpoint(path, {"model.w": torch.zeros(2)}, {"pad": "x" * pad})
        first = path.read_bytes()[:2]
        load_checkpoint(path)
        if first[:1] == b"\x80" or first == b"PK":
            return
    pytest.fail("no header length hit the magic bytes; widen the padding range")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_leave_ordinary_file_permissions_checkpoints_too(tmp_path, umask):
    """Every file follows the umask; safetensors recreates its file 0600, so checkpoints once did not."""
    import os

    from rnnlm.core.fileio import atomic_write_text

    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "page.html", "<p>hi</p>")
        ckpt = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.zeros(2)}, {"step": 1})
    finally:
        os.umask(old)
    assert path.read_text() == "<p>hi</p>"
    for written in (path, ckpt):
        assert (written.stat().st_mode & 0o777) == 0o666 & ~umask, written
