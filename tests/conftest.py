"""Shared fixtures: tiny corpora and configs (hidden 16, bptt 8, batch 4), fixed seeds, temp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TINYSHAKESPEARE = SHARED / "corpora" / "tinyshakespeare.txt"

TINY_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\n"
) * 12 + "Ünïcödé: 한국어 텍스트 🙂 — fin.\n"


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test runs in its own directory (./checkpoints stays per-test) with one torch thread."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def tinyshakespeare() -> Path:
    if not TINYSHAKESPEARE.exists():
        pytest.skip("../shared/corpora/tinyshakespeare.txt not present")
    return TINYSHAKESPEARE


TINY_MODEL = dict(embed_size=16, hidden_size=16, num_layers=1, dropout=0.0)
TINY_TRAIN = dict(batch_size=4, bptt=8, max_time_s=None, max_steps=6, warmup_steps=2, calibrate_steps=3,
                  eval_every_s=1000.0, eval_streams=4, precision="fp32", device="cpu")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped (and said so) on machines without it, such as CI."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
