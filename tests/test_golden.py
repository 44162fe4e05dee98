"""Golden losses: the first CPU training steps at a fixed seed, for each cell, within 1e-4.

A change to the model, the optimiser, the schedule or the data order moves
these numbers; so can a new torch.  When the change is intended (or torch was
upgraded), regenerate them and review the diff:

    python tests/test_golden.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnlm.core.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlm.data.splits import TBPTTBatches, split_ids  # noqa: E402
from rnnlm.model.network import RNNLM  # noqa: E402
from rnnlm.training.trainer import Trainer  # noqa: E402

GOLDEN = Path(__file__).with_name("golden") / "losses.json"
CELLS = ("rnn", "lstm", "gru")
STEPS = 6


def first_losses(cell: str, out: Path) -> list[float]:
    """Losses of the first STEPS steps: 2-layer model with dropout, warmup + cosine, one thread."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ids = (np.arange(4000) * 7 % 23).astype(np.uint8)
    train_ids, val_ids = split_ids(ids, (0.9, 0.1))
    config = TrainConfig(batch_size=4, bptt=8, lr=4e-3, max_time_s=None, max_steps=STEPS, warmup_steps=2, eval_every_s=1e9,
                         eval_streams=4, precision="fp32", device="cpu", log_every_s=1e-9)
    model = RNNLM(ModelConfig(cell=cell, vocab_size=23, embed_size=8, hidden_size=16, num_layers=2, dropout=0.1))
    losses: list[float] = []
    trainer = Trainer(model, config, TBPTTBatches(train_ids, 4, 8), val_ids, torch.device("cpu"), out, {},
                      callbacks=[lambda e: losses.append(e.data["loss"]) if e.kind == "log" else None])
    trainer.run()
    return losses


@pytest.mark.parametrize("cell", CELLS)
def test_first_losses_match_golden(cell, tmp_path):
    golden = json.loads(GOLDEN.read_text())
    if golden["torch"].split("+")[0] != torch.__version__.split("+")[0]:
        pytest.skip(f"golden losses are from torch {golden['torch']}; regenerate with python tests/test_golden.py")
    np.testing.assert_allclose(first_losses(cell, tmp_path), golden["losses"][cell], atol=1e-4, rtol=0)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        losses = {cell: first_losses(cell, Path(tmp) / cell) for cell in CELLS}
    GOLDEN.write_text(json.dumps({"torch": torch.__version__, "losses": losses}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
