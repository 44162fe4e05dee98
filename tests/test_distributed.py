"""torchrun with 2 CPU processes on gloo: identical weights on both ranks, loss equal to one process."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlm.core.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # torchrun with two CPU processes: `-m 'not slow'` leaves them out

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_two_ranks_match_each_other_and_a_single_process(tmp_path):
    (tmp_path / "ddp").mkdir()
    (tmp_path / "one").mkdir()
    ddp = subprocess.run([*TORCHRUN, str(WORKER), str(tmp_path / "ddp"), "8"], capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "one"), "8"], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    r0, r1 = _read(tmp_path / "ddp" / "rank0.json"), _read(tmp_path / "ddp" / "rank1.json")
    single = _read(tmp_path / "one" / "rank0.json")
    assert r0["weights"] == r1["weights"]  # bitwise: DDP broadcasts rank 0 and averages gradients
    assert abs(r0["loss"] - single["loss"]) < 1e-5
    assert np.max(np.abs(np.array(r0["weights"]) - np.array(single["weights"]))) < 1e-5


def test_torchrun_cli_trains_saves_once_and_resumes(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    args = ["-m", "rnnlm", "train", str(tiny_corpus), "--out", str(out), "--hidden", "16", "--embed", "8",
            "--bptt", "8", "--batch-size", "2", "--precision", "fp32", "--threads", "1", "--device", "cpu"]
    first = subprocess.run([*TORCHRUN, *args, "--max-steps", "4"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    meta, tensors = load_checkpoint(out / "latest.safetensors")
    assert meta["world_size"] == 2 and "hidden.1.h" in tensors and "rng.1.torch" in tensors
    again = subprocess.run([*TORCHRUN, *args, "--resume", "--max-steps", "6"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert load_checkpoint(out / "latest.safetensors")[0]["step"] == 6


def test_ranks_follow_rank_0_when_their_validation_scores_differ(tmp_path):
    """Rank 1 scores differently at every validation; the run must still save, end and agree (no hang)."""
    worker = Path(__file__).with_name("ddp_decisions_worker.py")
    ddp = subprocess.run([*TORCHRUN, str(worker), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert ddp.returncode == 0, ddp.stderr[-6000:]
    r0, r1 = _read(tmp_path / "rank0.json"), _read(tmp_path / "rank1.json")
    assert r0 == r1 and r0["steps"] == 12
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "latest.safetensors").exists()
