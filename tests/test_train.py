"""Trainer loop on synthetic ids: schedule, exact resume after SIGINT, NaN handling."""

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlm.core.checkpoint import load_checkpoint, prefixed
from rnnlm.core.config import ModelConfig, TrainConfig
from rnnlm.data.splits import TBPTTBatches, split_ids
from rnnlm.core.errors import Interrupted, RnnlmError
from rnnlm.model.network import RNNLM
from rnnlm.training.schedule import auto_dropout, lr_factor
from rnnlm.training.trainer import Trainer

IDS = (np.arange(5000) % 17).astype(np.uint8)
CFG = TrainConfig(batch_size=4, bptt=8, max_time_s=None, max_steps=30, warmup_steps=2, eval_every_s=1000.0,
                  eval_streams=4, precision="fp32", device="cpu", log_every_s=1e-9)


def _run(out: Path, resume=False, stop_at=None, cfg=CFG, poison=None, dropout=0.1, layers=1, clock=time.perf_counter,
         **model_fields):
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)  # rnnlm.train makes the run directory; the trainer's saves make none
    model = RNNLM(ModelConfig(vocab_size=17, embed_size=16, hidden_size=16, dropout=dropout, num_layers=layers,
                              **model_fields))
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
                      {"config": {"train": cfg.to_dict()}}, callbacks=[on_event], resume_from=resume_from, clock=clock)
    if poison is not None:
        poison(trainer)
    return trainer, losses


def test_schedule_warms_up_then_decays_to_floor():
    assert lr_factor(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 100, 10, 0.1) == pytest.approx(0.55)
    assert lr_factor(500, None, 10, 0.1) == 1.0  # total unknown while a time budget calibrates


REGULARISED = {"weight_drop": None, "embed_drop": 0.2}  # DropConnect auto, embedding dropout given


@pytest.mark.parametrize("dropout, layers, extra, cfg", [(0.1, 1, {}, CFG), (None, 2, {}, CFG),
                                                         (None, 2, REGULARISED, CFG.replace(state_reset=0.25))])
def test_sigint_saves_and_resume_matches_uninterrupted_losses_exactly(tmp_path, dropout, layers, extra, cfg):
    trainer, straight = _run(tmp_path / "a", dropout=dropout, layers=layers, cfg=cfg, **extra)
    trainer.run()
    trainer, first = _run(tmp_path / "b", stop_at=12, dropout=dropout, layers=layers, cfg=cfg, **extra)
    with pytest.raises(Interrupted) as info:
        trainer.run()
    assert info.value.exit_code == 130 and "--resume" in str(info.value)
    assert [s for s, _ in first] == list(range(1, 13))
    trainer, rest = _run(tmp_path / "b", resume=True, dropout=dropout, layers=layers, cfg=cfg, **extra)
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


def test_a_step_budget_ending_before_the_time_fit_fits_auto_dropout(tmp_path):
    """``--max-time 30s --max-steps 30`` trained and reported dropout 0.1 (the start rate) where ``--max-steps 30``
    alone fits 0: the run ended before the time budget's first fit (step 20 + calibrate_steps), so the step budget
    is the one that ends first, and it is known up front."""
    steps_only, _ = _run(tmp_path / "steps", dropout=None, layers=2)
    both, _ = _run(tmp_path / "both", cfg=CFG.replace(max_time_s=30.0), dropout=None, layers=2)
    summary = both.run()
    expected = auto_dropout(CFG.max_steps / both.batches.windows_per_epoch)
    assert summary["steps"] == CFG.max_steps and summary["dropout_auto"]
    assert summary["dropout"] == both.model.rnn.dropout == both.state.dropout == steps_only.state.dropout == expected
    first_fit = min(20, CFG.calibrate_steps) + CFG.calibrate_steps
    later, _ = _run(tmp_path / "later", cfg=CFG.replace(max_time_s=30.0, max_steps=first_fit + 1), dropout=None)
    assert later.state.dropout is None  # it runs past the time budget's first fit, which may then end it first


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("extra", [{}, {"max_steps": 100_000}, {"epochs": 1000.0}])
def test_time_budget_schedule_ends_with_the_budget_when_steps_slow_down(tmp_path, extra):
    """Steps 60% slower after step 300; validations cost time too.  The cosine must still reach its floor
    when the time is up, with no jump in the learning rate at any refit, whatever other budget is given."""
    clock = FakeClock()
    cfg = CFG.replace(**{"max_steps": None, "max_time_s": 60.0, "calibrate_steps": 10, "eval_every_s": 5.0,
                         "warmup_steps": 5, **extra})
    trainer, _ = _run(tmp_path, cfg=cfg, dropout=None, clock=clock)
    lrs, dropouts = [], set()
    step, validate = trainer.train_step, trainer.validate

    def timed_step():
        clock.t += 0.05 if trainer.state.step < 300 else 0.08
        loss = step()
        lrs.append(trainer.state.lr)
        if trainer.state.time_fitted:
            dropouts.add(trainer.model.dropout)
        return loss

    def timed_validate(probe=False):
        clock.t += 0.01 if probe else 0.2
        return validate(probe)

    trainer.train_step, trainer.validate = timed_step, timed_validate
    summary = trainer.run()
    assert summary["stop_reason"] == "budget" and summary["elapsed_s"] >= 0.97 * cfg.max_time_s
    assert trainer.state.total_steps < 1000  # the time budget, not the step or epoch one, set the count
    floor = cfg.lr * cfg.min_lr_ratio
    assert lrs[-1] <= floor * 1.2, (lrs[-1], floor, len(lrs), trainer.state.total_steps)
    jumps = np.abs(np.diff(lrs[cfg.warmup_steps:])) / cfg.lr
    assert jumps.max() < 0.01  # a refit without the anchor jumped by ~0.2 here
    assert len(dropouts) == 1  # auto dropout fixed at the first fit, refits leave it


def test_a_slow_start_does_not_shorten_a_time_budget(tmp_path):
    """Calibration sees slow first steps (twice the steady time); refits win the time back."""
    clock = FakeClock()
    cfg = CFG.replace(max_steps=None, max_time_s=30.0, calibrate_steps=10, eval_every_s=3.0)
    trainer, _ = _run(tmp_path, cfg=cfg, clock=clock)
    step = trainer.train_step

    def timed_step():
        clock.t += 0.1 if trainer.state.step < 40 else 0.05
        return step()

    trainer.train_step = timed_step
    summary = trainer.run()
    assert summary["elapsed_s"] >= 0.97 * cfg.max_time_s  # the first plan alone stopped at ~60% of it


def test_steps_that_speed_up_after_the_last_refit_still_use_the_whole_budget(tmp_path):
    """Planned at 0.2 s a step with no later refit (validation off); then steps run 10× faster.

    The plan is spent at ~45 s of 60: the run refits and trains on at the floor learning rate.
    """
    clock = FakeClock()
    cfg = CFG.replace(max_steps=None, max_time_s=60.0, calibrate_steps=10, eval_every_s=1e9, warmup_steps=5)
    trainer, _ = _run(tmp_path, cfg=cfg, clock=clock)
    step, lrs = trainer.train_step, []

    def timed_step():
        clock.t += 0.2 if trainer.state.step < 200 else 0.02
        loss = step()
        lrs.append(trainer.state.lr)
        return loss

    trainer.train_step = timed_step
    summary = trainer.run()
    assert summary["elapsed_s"] >= 0.97 * cfg.max_time_s and summary["steps"] > 400
    assert lrs[-1] == pytest.approx(cfg.lr * cfg.min_lr_ratio)
    assert np.abs(np.diff(lrs[cfg.warmup_steps:])).max() / cfg.lr < 0.01


def test_auto_validation_cadence_keeps_costly_validations_under_5_percent(tmp_path):
    """A validation costing 20 s in a 600 s budget: no validation at the first fit, then one every 400 s."""
    from rnnlm.training.trainer import EVAL_SHARE, PROBE_IDS

    clock = FakeClock()
    cfg = CFG.replace(max_steps=None, max_time_s=600.0, calibrate_steps=10, eval_every_s=None)
    trainer, _ = _run(tmp_path, cfg=cfg, clock=clock)
    step, validate = trainer.train_step, trainer.validate
    spent = []

    def timed_step():
        clock.t += 0.5
        return step()

    def timed_validate(probe=False):
        cost = 20.0 * (min(PROBE_IDS, len(trainer.val_ids)) / len(trainer.val_ids) if probe else 1.0)
        clock.t += cost
        spent.append((probe, cost, trainer.state.step))
        return validate(probe)

    trainer.train_step, trainer.validate = timed_step, timed_validate
    summary = trainer.run()
    periodic = [s for probe, s, at in spent if not probe][:-1]  # the last is the final validation, outside the budget
    assert spent[0][0] and len(periodic) == 1, spent
    assert sum(periodic) <= EVAL_SHARE * cfg.max_time_s
    assert summary["elapsed_s"] >= 0.97 * cfg.max_time_s


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


def test_resume_on_another_number_of_ranks_restarts_the_streams(tmp_path):
    """A run saved on 2 ranks resumed on 1: its state must not be rank 0's stream state (other rows now)."""
    from rnnlm.core.checkpoint import save_checkpoint

    trainer, _ = _run(tmp_path, cfg=CFG.replace(max_steps=5))
    trainer.run()
    meta, tensors = load_checkpoint(tmp_path / "latest.safetensors")
    assert tensors["hidden.0.h"].abs().sum() > 0
    tensors["hidden.1.h"], tensors["rng.1.torch"] = tensors["hidden.0.h"] + 1, tensors["rng.0.torch"].clone()
    save_checkpoint(tmp_path / "latest.safetensors", tensors, dict(meta, world_size=2))
    resumed, _ = _run(tmp_path, resume=True, cfg=CFG.replace(max_steps=8))
    assert all(float(h.abs().sum()) == 0.0 for h in resumed.hidden)


def test_carried_state_is_float32_and_a_bf16_state_is_cast_on_restore(tmp_path):
    """Autocast computes bf16 states; the carried (and saved) state stays float32, and an older bf16 one is cast."""
    from rnnlm.core.checkpoint import save_checkpoint

    trainer, _ = _run(tmp_path, cfg=CFG.replace(max_steps=3, precision="bf16"))
    trainer.autocast_dtype = torch.bfloat16
    trainer.run()
    assert all(h.dtype == torch.float32 for h in trainer.hidden)
    meta, tensors = load_checkpoint(tmp_path / "latest.safetensors")
    assert tensors["hidden.0.h"].dtype == torch.float32
    tensors["hidden.0.h"] = tensors["hidden.0.h"].bfloat16()  # what a checkpoint saved before this change holds
    save_checkpoint(tmp_path / "latest.safetensors", tensors, meta)
    resumed, _ = _run(tmp_path, resume=True, cfg=CFG.replace(max_steps=5, precision="fp32"))
    assert all(h.dtype == torch.float32 for h in resumed.hidden)
    resumed.run()  # an fp32 cell with the restored state: no dtype error


@pytest.mark.parametrize("tie", [False, True])
def test_sliced_decoding_gives_the_same_loss_and_gradients(tmp_path, monkeypatch, tie):
    """A big vocabulary's logits are made a slice at a time: the step must not change beyond float rounding."""
    from rnnlm.training import trainer as trainer_mod

    def one_step(budget):
        monkeypatch.setattr(trainer_mod, "STEP_LOGITS_BUDGET", budget)
        torch.manual_seed(0)
        model = RNNLM(ModelConfig(vocab_size=17, embed_size=16, hidden_size=16, dropout=0.2, tie_weights=tie))
        train_ids, val_ids = split_ids(IDS, (0.9, 0.1))
        trainer = Trainer(model, CFG, TBPTTBatches(train_ids, 4, 8), val_ids, torch.device("cpu"), tmp_path,
                          {"config": {"train": CFG.to_dict()}})
        torch.manual_seed(1)
        trainer.optimizer.step = lambda: None  # keep the gradients to compare
        loss = trainer.train_step()
        return loss, {n: p.grad.clone() for n, p in model.named_parameters()}, trainer.hidden

    whole, whole_grads, whole_state = one_step(1 << 30)
    sliced, sliced_grads, sliced_state = one_step(4 * 17 * 3)  # 3 positions a slice: 3 slices of 8
    assert sliced == pytest.approx(float(whole), rel=1e-5)
    for name, grad in whole_grads.items():
        torch.testing.assert_close(sliced_grads[name], grad, rtol=1e-4, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(sliced_state, whole_state))
