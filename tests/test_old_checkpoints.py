"""Checkpoints written before a change still load and write the same text after it.

``tests/golden/pre-layers-gru.safetensors`` was written by main before the
package moved into layers (its header names no module, only tensors and
config); the figures beside it were read from that main.  Greedy text has a
top-1 margin of 0.11 nats at every step, so no CPU's rounding can flip it; the
seeded sample and the bpc are the same computation on the same kernels.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import rnnlm

GOLDEN = Path(__file__).parent / "golden"


def test_a_checkpoint_from_before_the_layers_loads_and_writes_the_same_text(tmp_path):
    expected = json.loads((GOLDEN / "pre-layers-gru.json").read_text(encoding="utf-8"))
    ckpt = shutil.copy(GOLDEN / "pre-layers-gru.safetensors", tmp_path / "old.safetensors")
    lm = rnnlm.load(ckpt, device="cpu")
    assert (lm.config.cell, lm.config.num_layers, lm.config.hidden_size) == ("gru", 2, 12)
    assert lm.generate("All:", length=80, temperature=0) == expected["greedy"]
    assert lm.generate("All:", length=80, seed=3) == expected["sampled_seed_3"]
    assert lm.evaluate(expected["bpc_text"]).bpc == pytest.approx(expected["bpc"], abs=1e-5)
