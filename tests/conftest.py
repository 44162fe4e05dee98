"""Shared fixtures: tiny corpora and configs (hidden 16, bptt 8, batch 4), fixed seeds, temp dirs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/pages.py, the browser harness

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


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (see tests/pages.py); skips, or fails in CI, without it."""
    import os

    from pages import missing_reason, start_browser

    reason = missing_reason()
    if reason is not None:
        if os.environ.get("RNNLM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RNNLM_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    driver = start_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny trained character LSTM (fp32, 1 thread, 2 layers) shared by every page test: its run directory."""
    from rnnlm.training.run import train
    from rnnlm.core.config import ModelConfig, TrainConfig

    root = tmp_path_factory.mktemp("tiny_run")
    corpus = root / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 40})
    train(corpus, model=ModelConfig(cell="lstm", **{**TINY_MODEL, "num_layers": 2}), config=config,
          out=root / "run", threads=1)
    return root / "run"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped (and said so) on machines without it, such as CI."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
