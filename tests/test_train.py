"""Trainer loop on synthetic ids: schedule, exact resume after SIGINT, NaN handling."""

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlm.checkpoint import load_checkpoint, prefixed
from rnnlm.config import ModelConfig, TrainConfig
from rnnlm.data import TBPTTBatches, split_ids
from rnnlm.errors import Interrupted, RnnlmError
from rnnlm.model import RNNLM
from rnnlm.schedule import auto_dropout, lr_factor
from rnnlm.trainer import Trainer

IDS = (np.arange(5000) % 17).astype(np.uint8)
CFG = TrainConfig(batch_size=4, bptt=8, max_time_s=None, max_steps=30, warmup_steps=2, eval_every_s=1000.0,
                  eval_streams=4, precision="fp32", device="cpu", log_every_s=1e-9)


def _run(out: Path, resume=False, stop_at=None, cfg=CFG, poison=None, dropout=0.1, layers=1):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=17, embed_size=16, hidden_size=16, dropout=dropout, num_layers=layers))
    resume_from = None
    if resume:
        meta, tensors = load_checkpoint(out / "latest.safetensors")
        model.load_state_dict(prefixed(tensors, "model"))
        resume_from = (meta, tensors)
    losses = []

    def on_event(event):
        if event.kind == "log":
            losses.append((event.step, event.data["loss"]))
            if event.step == stop_at:
                os.kill(os.getpid(), signal.SIGINT)

    train_ids, val_ids = split_ids(IDS, (0.9, 0.1))
    trainer = Trainer(model, cfg, TBPTTBatches(train_ids, 4, 8), val_ids, torch.device("cpu"), out,
                      {"config": {"train": cfg.to_dict()}}, callbacks=[on_event], resume_from=resume_from)
    if poison is not None:
        poison(trainer)
    return trainer, losses


def test_schedule_warms_up_then_decays_to_floor():
    assert lr_factor(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 100, 10, 0.1) == pytest.approx(0.55)
    assert lr_factor(500, None, 10, 0.1) == 1.0  # total unknown while a time budget calibrates


@pytest.mark.parametrize("dropout, layers", [(0.1, 1), (None, 2)])
def test_sigint_saves_and_resume_matches_uninterrupted_losses_exactly(tmp_path, dropout, layers):
    trainer, straight = _run(tmp_path / "a", dropout=dropout, layers=layers)
    trainer.run()
    trainer, first = _run(tmp_path / "b", stop_at=12, dropout=dropout, layers=layers)
    with pytest.raises(Interrupted) as info:
        trainer.run()
    assert info.value.exit_code == 130 and "--resume" in str(info.value)
    assert [s for s, _ in first] == list(range(1, 13))
    trainer, rest = _run(tmp_path / "b", resume=True, dropout=dropout, layers=layers)
    trainer.run()
    assert first + rest == straight  # bitwise: same floats, same steps


def test_auto_dropout_rises_with_the_planned_passes():
    assert [auto_dropout(e) for e in (1, 2.5, 5, 10, 20, 40, 80, 1000)] == [0.0, 0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.4]


@pytest.mark.parametrize("steps", [30, 3000])
def test_auto_dropout_follows_the_step_budget_and_a_given_rate_is_kept(tmp_path, steps):
    trainer, _ = _run(tmp_path / "auto", cfg=CFG.replace(max_steps=steps), dropout=None, layers=2)
    epochs = steps / trainer.batches.windows_per_epoch
    assert trainer.model.dropout == trainer.model.rnn.dropout == auto_dropout(epochs) == trainer.state.dropout
    fixed, _ = _run(tmp_path / "fixed", cfg=CFG.replace(max_steps=steps), dropout=0.3, layers=2)
    assert fixed.model.dropout == fixed.model.rnn.dropout == 0.3 and fixed.state.dropout is None


def test_a_slow_start_does_not_shorten_a_time_budget(tmp_path):
    """Calibration sees slow first steps; refits at the early validations win the time back."""
    def slow_start(trainer):
        original = trainer.train_step

        def step():
            if trainer.state.step < 40:
                time.sleep(0.006)  # about twice a tiny step's time
            return original()
        trainer.train_step = step

    cfg = CFG.replace(max_steps=None, max_time_s=3.0, calibrate_steps=10, eval_every_s=0.3)
    trainer, _ = _run(tmp_path, cfg=cfg, poison=slow_start)
    summary = trainer.run()
    assert summary["elapsed_s"] >= 0.85 * cfg.max_time_s  # the first plan alone stopped at ~60% of it


def test_loss_decreases_and_checkpoints_hold_val_bpc(tmp_path):
    trainer, losses = _run(tmp_path, cfg=CFG.replace(max_steps=60))
    summary = trainer.run()
    assert losses[-1][1] < losses[0][1] - 0.25
    meta, _ = load_checkpoint(tmp_path / "best.safetensors")
    assert meta["metrics"]["val_bpc"] == pytest.approx(summary["best_val_bpc"])
    assert math.isfinite(summary["val_bpc"])


def test_nan_steps_are_skipped_then_abort_without_saving_nan(tmp_path):
    def poison(trainer):
        original = trainer.model.forward

        def forward(ids, state):
            logits, new_state = original(ids, state)
            return logits * float("nan"), new_state

        trainer.net = type("Poisoned", (), {"__call__": staticmethod(forward)})()

    trainer, _ = _run(tmp_path, poison=poison)
    with pytest.raises(RnnlmError, match="non-finite"):
        trainer.run()
    assert trainer.state.lr_scale == pytest.approx(0.5 ** CFG.max_bad_steps)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_single_nan_step_recovers(tmp_path):
    calls = {"n": 0}

    def poison(trainer):
        original = trainer.model.forward

        def forward(ids, state):
            calls["n"] += 1
            logits, new_state = original(ids, state)
            return (logits * float("inf") if calls["n"] == 3 else logits), new_state

        trainer.net = type("Poisoned", (), {"__call__": staticmethod(forward)})()

    trainer, losses = _run(tmp_path, poison=poison)
    summary = trainer.run()
    assert summary["steps"] == CFG.max_steps and trainer.state.lr_scale == 0.5
    assert len(losses) == CFG.max_steps - 1  # the bad step logged no loss
