import errno
import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from rnnlm.checkpoint import load_checkpoint, optimizer_tensors, restore_optimizer, save_checkpoint
from rnnlm.errors import InputError, RnnlmError


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


def test_atomic_writes_leave_ordinary_file_permissions(tmp_path):
    import os

    from rnnlm.fileio import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "page.html", "<p>hi</p>")
    finally:
        os.umask(old)
    assert path.read_text() == "<p>hi</p>" and (path.stat().st_mode & 0o777) == 0o644
