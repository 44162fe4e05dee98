"""The training loop: teacher forcing, truncated BPTT, AdamW, clipping, warmup + cosine.

The trainer knows nothing about terminals or files other than checkpoints: it
reports through :class:`Event` callbacks (progress bar, metrics.jsonl, curve
plot subscribe in ``progress.py`` / ``runlog.py``), so the same loop serves the
CLI, ``compare``, tests and notebooks.  It never prints.

Budgets follow docs/developer/rules.md: a time budget is turned into a step count after
``calibrate_steps`` steps and refitted at every validation, so the learning-rate
schedule is a function of the step that ends with the budget even when steps
slow down; with a step or epoch budget as well, the first budget to be reached
sets the count.  The clock is injectable (``clock=``), so tests drive it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rnnlm.core.checkpoint import save_checkpoint
from rnnlm.core.config import TrainConfig
from rnnlm.data.splits import TBPTTBatches
from rnnlm.core.errors import Interrupted, RnnlmError
from rnnlm.core.device import autocast_context
from rnnlm.evaluation.metrics import EvalResult, evaluate_scope
from rnnlm.model.network import RNNLM, State, detach_state, num_parameters
from rnnlm.training.events import Callback, Event
from rnnlm.training.pacing import LogWindow, StepRate, TrainingClock
from rnnlm.training.schedule import (RATES, StopFlag, auto_rates, cosine_progress, effective_warmup,
                                    fixed_steps, lr_factor, reset_streams)
from rnnlm.training.state import TrainState, build_checkpoint, restore_training



# Steps left out of the step-time measurement: the first ones pay one-off costs (allocations, kernel
# selection).  Measured on the default 1×512 LSTM (bf16, 2 cores): steps 5–35 averaged 69 ms, steps
# 20–50 62 ms, the rest of the run 60–62 ms; starting at step 5 made 3–15 minute runs end 5% early.
CALIBRATE_SKIP = 20

# Auto validation cadence (no --eval-every): every EVAL_EVERY_MIN_S at most, and never more than EVAL_SHARE of
# the time.  A 256k-character sample with a 6,209-character vocabulary costs ~15 s on 2 cores: at 10% a 3-minute
# run on such a corpus spent a fifth of its wall time outside training (with the final validation); at 5% it
# validates at its first fit (when cheap) and at the end.
EVAL_EVERY_MIN_S = 30.0
EVAL_SHARE = 0.05
# The first fit validates only when a probe says it costs at most this share of the time budget.
CHEAP_FIRST_EVAL = 0.02
PROBE_IDS = 4097
# Logits one training step may hold at once (elements): above it the decoder runs in slices of positions
# (see Trainer._sliced_loss_backward).  The default 65-character vocabulary at B=T=64 is 266k, far below.
STEP_LOGITS_BUDGET = 1 << 21


class Trainer:
    """Runs one training job for one rank; only rank 0 writes files and emits events."""

    def __init__(
        self,
        model: RNNLM,
        config: TrainConfig,
        batches: TBPTTBatches,
        val_ids,
        device: torch.device,
        out_dir: Path,
        meta: dict[str, Any],
        *,
        token_chars=None,
        autocast_dtype: torch.dtype | None = None,
        callbacks: list[Callback] | None = None,
        rank: int = 0,
        world_size: int = 1,
        resume_from: tuple[dict, dict] | None = None,
        static_tensors: dict[str, torch.Tensor] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        val_segments: list | None = None,
    ) -> None:
        self.model, self.config, self.batches, self.val_ids = model, config, batches, val_ids
        self.device, self.out_dir, self.meta = device, Path(out_dir), meta
        self.token_chars, self.autocast_dtype = token_chars, autocast_dtype
        self.callbacks = callbacks or []
        self.rank, self.world_size = rank, world_size
        self.static_tensors = static_tensors or {}
        self.clock = clock
        self.eval_cost_s = 0.0  # seconds of the last validation and its save (the cadence and the fits use it)
        self.val_segments = val_segments  # the fixed validation sample (data.val_scope), or None: all of val_ids
        self.net = model
        if world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("embedding")]
        other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.startswith("embedding"))]
        fused = {"fused": True} if device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=config.lr,
            betas=(0.9, 0.99),
            **fused,
        )
        self.state = TrainState()
        self.hidden: State = model.init_state(batches.batch_size, device)
        if resume_from is None:
            self._set_total(self._fixed_total())
        else:
            self.state, self.hidden = restore_training(
                self.optimizer, *resume_from, fresh_hidden=self.hidden, device=device, rank=rank, world_size=world_size,
                seed=config.seed)
            saved_world = resume_from[0].get("world_size", 1)
            if saved_world != world_size:
                self.emit("warning", message=f"resuming on {world_size} rank(s) a run saved on {saved_world}: "
                                             "the text is cut into other streams, so their hidden states restart")
            stored = resume_from[0]["config"]["train"]
            if any(stored.get(k) != getattr(config, k) for k in ("max_time_s", "max_steps", "epochs")):
                # A new budget: refit the schedule (continuing from where the learning rate is) and dropout to it.
                self.state.dropout = self.state.weight_drop = self.state.embed_drop = None
                self.state.time_fitted = False
                self._set_total(self._fixed_total() or self.state.total_steps)
            else:
                self._set_total(self.state.total_steps)

    def _warmup(self) -> int:
        return self.state.warmup_steps if self.state.warmup_steps is not None else self.config.warmup_steps

    def _set_total(self, total: int | None) -> None:
        """Set the run's step count, keeping the learning rate continuous, and fit the auto rates once.

        A change after warmup anchors the cosine where it is (see
        ``schedule.cosine_progress``).  Auto dropout follows from the passes
        planned by whichever budget ends the run first, fixed the first time
        that count is known (``_count_is_final``): refits only move the schedule.
        """
        st = self.state
        if total != st.total_steps and None not in (total, st.total_steps, st.warmup_steps) and st.step >= st.warmup_steps:
            st.anchor = [st.step, cosine_progress(st.step, st.total_steps, st.warmup_steps, self._anchor())]
        st.total_steps = total
        if st.warmup_steps is None and total is not None:
            st.warmup_steps = effective_warmup(self.config.warmup_steps, total)
        auto = [name for name in RATES if getattr(self.model.config, name) is None and getattr(st, name) is None]
        if auto and total is not None and self._count_is_final():
            fitted = auto_rates(total / self.batches.windows_per_epoch)
            for name in auto:
                setattr(st, name, fitted[name])
        self.model.set_rates(**{name: getattr(st, name) for name in RATES})

    def _count_is_final(self) -> bool:
        """The step count is the one the first budget to end gives: auto dropout may be fitted to it.

        Without a time budget that is the step or epoch count.  With one, it is
        the time budget's first fit, unless a step or epoch budget ends the run
        by the step that fit would come at: no time fit can then come in time,
        and that budget's count, known up front (the most steps the run can
        make), fits it.  (A 30-step run under ``--max-time 30s`` ended before
        its first fit and trained with the start rate, 0.1, where
        ``--max-steps 30`` alone fits 0.)
        """
        if self.config.max_time_s is None or self.state.time_fitted:
            return True
        fixed = self._fixed_total()
        return fixed is not None and fixed <= self.state.step + self._calibrate_skip() + self.config.calibrate_steps

    def _calibrate_skip(self) -> int:
        """Steps of a (resumed) run before its step time is measured; the first fit comes ``calibrate_steps`` later."""
        return min(CALIBRATE_SKIP, self.config.calibrate_steps)

    def _anchor(self) -> tuple[int, float] | None:
        return None if self.state.anchor is None else (int(self.state.anchor[0]), float(self.state.anchor[1]))

    def _fixed_total(self) -> int | None:
        """The step count when it is known up front: from ``max_steps`` and/or ``epochs``."""
        return fixed_steps(self.config.max_steps, self.config.epochs, self.batches.windows_per_epoch)

    def emit(self, kind: str, **data: Any) -> None:
        if self.rank != 0:
            return
        event = Event(kind, self.state.step, self.state.total_steps, self._elapsed(), data)
        for callback in self.callbacks:
            callback(event)

    def _elapsed(self) -> float:
        """Seconds of the whole run (earlier runs of a resumed one included), pauses too: what a time budget counts."""
        running = getattr(self, "_run_clock", None)
        return self.state.elapsed_s + (self.clock() - running.started if running is not None else 0.0)

    def validate(self, probe: bool = False) -> EvalResult:
        """Score the validation scope; ``probe`` scores only its first ``PROBE_IDS`` ids (to time it)."""
        if probe:
            ids = (self.val_segments[0] if self.val_segments else self.val_ids)[:PROBE_IDS]
            return evaluate_scope(self.model, ids, None, token_chars=self.token_chars, streams=4)
        return evaluate_scope(self.model, self.val_ids, self.val_segments, token_chars=self.token_chars,
                              streams=self.config.eval_streams, progress=self.phase("validating"))

    def _probe_eval_cost(self) -> float:
        """Seconds a validation would take, extrapolated from scoring its first few thousand ids."""
        start = self.clock()
        probed = self.validate(probe=True)
        scope_ids = sum(len(s) for s in self.val_segments) if self.val_segments else len(self.val_ids)
        return (self.clock() - start) * scope_ids / max(1, probed.tokens)

    def eval_interval(self) -> float:
        """Seconds of training between validations: ``--eval-every``, or the auto cadence."""
        if self.config.eval_every_s is not None:
            return self.config.eval_every_s
        return max(EVAL_EVERY_MIN_S, self.eval_cost_s / EVAL_SHARE)

    def phase(self, name: str) -> Callable[[int, int], None]:
        """A progress callback for a long phase: ``phase`` events (rendered on stderr by progress.py)."""
        return lambda done, total: self.emit("phase", name=name, done=done, total=total)

    def save(self, name: str, val: EvalResult | None = None) -> Path | None:
        """Write ``name``.safetensors on rank 0; every rank takes part (hidden states and RNG are gathered)."""
        tensors, meta = build_checkpoint(self.model, self.optimizer, self.state, self.hidden,
                                         static_tensors=self.static_tensors, header=self.meta, device=self.device,
                                         world_size=self.world_size, val=val)
        if self.rank != 0:
            return None
        path = save_checkpoint(self.out_dir / name, tensors, meta)
        self.emit("checkpoint", path=str(path), name=name)
        return path

    def _calibrate(self, step_time_s: float, eval_time_s: float) -> None:
        """Turn the remaining time into a total step count (rank 0 decides, all ranks agree).

        It runs once after ``calibrate_steps`` steps, then again at every
        validation with the step time measured since the previous fit: the first
        steps run slower than the steady state (a 3-minute run measured 48k
        chars/s there against 61k after, and stopped at 2.5 minutes), and steps
        can slow down later too (an AMD run fell from 33–36k to 27–28k chars/s
        and ran 1,205 of 1,311 planned steps, ending at a high learning rate).
        The cosine is anchored at each refit, so the learning rate stays
        continuous.  With a step or epoch budget too, the smaller count wins.
        Under DDP rank 0's count is broadcast.
        """
        remaining = self.config.max_time_s - self._elapsed()
        evals = remaining / self.eval_interval()
        usable = max(0.0, remaining - evals * eval_time_s)
        total = self.state.step + int(usable / max(step_time_s, 1e-9))
        if self.world_size > 1:
            box = torch.tensor([total], dtype=torch.int64, device=self.device)
            torch.distributed.broadcast(box, src=0)
            total = int(box.item())
        fixed = self._fixed_total()
        self.state.time_fitted = True
        self._set_total(max(self.state.step + 1, min(total, fixed) if fixed is not None else total))

    def _over_budget(self) -> bool:
        """Time up, a step or epoch budget reached, or a signal.

        A time budget's planned count is not a stop of its own: when the steps
        ran faster than planned (a shared machine freed up after the last refit),
        the plan is refitted and the remaining time trains at the floor learning
        rate instead of being left unused (see ``_plan_spent``).
        """
        st, cfg = self.state, self.config
        if cfg.max_time_s is None:
            steps_done = st.total_steps is not None and st.step >= st.total_steps
        else:
            fixed = self._fixed_total()
            steps_done = fixed is not None and st.step >= fixed
        over_time = cfg.max_time_s is not None and self._elapsed() >= cfg.max_time_s
        return steps_done or over_time or self._flag.signum is not None

    def _plan_spent(self) -> bool:
        """A time-budgeted run has made its planned steps with time left: refit before the next step."""
        st = self.state
        return self.config.max_time_s is not None and st.total_steps is not None and st.step >= st.total_steps

    def _shared(self, val: EvalResult) -> EvalResult:
        """Rank 0's validation result on every rank.

        "Improved" decides a save, and a save is a collective call: if ranks
        decided from their own scores, one differing bit would leave rank 0
        waiting alone in the gather until the timeout.  Rank 0 decides, all follow.
        """
        if self.world_size == 1:
            return val
        box = torch.tensor([val.nats, float(val.tokens), float(val.chars)], dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(box, src=0)
        nats, tokens, chars = box.tolist()
        return EvalResult(nats=nats, tokens=int(tokens), chars=int(chars))

    def _agree(self, *flags: bool) -> tuple[bool, ...]:
        """Clock- and signal-driven decisions, made identical on every rank (one small all-reduce).

        Ranks' clocks differ, and a save or validation is a collective call, so
        under DDP any rank's reason to stop, validate or save applies to all.
        """
        if self.world_size == 1:
            return flags
        box = torch.tensor([int(f) for f in flags], device=self.device)
        torch.distributed.all_reduce(box, op=torch.distributed.ReduceOp.MAX)
        return tuple(bool(v) for v in box.tolist())

    def train_step(self) -> torch.Tensor | None:
        """One TBPTT window; returns the loss (on device), or None when the step was skipped as non-finite."""
        step, cfg = self.state.step, self.config
        if self.batches.starts_epoch(step):
            self.hidden = self.model.init_state(self.batches.batch_size, self.device)
        else:
            self.hidden = reset_streams(self.hidden, step, cfg.state_reset)
        x, y = self.batches.batch(step, self.device)  # (B, T), (B, T)
        lr = cfg.lr * self.state.lr_scale * lr_factor(step, self.state.total_steps, self._warmup(), cfg.min_lr_ratio,
                                                      self._anchor())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        if self.world_size == 1 and x.numel() * self.model.config.vocab_size > STEP_LOGITS_BUDGET:
            loss, new_hidden = self._sliced_loss_backward(x, y)
        else:
            with autocast_context(self.device, self.autocast_dtype):
                logits, new_hidden = self.net(x, self.hidden)  # (B, T, V)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
            loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
        finite = bool(torch.isfinite(loss) & torch.isfinite(grad_norm))  # the one host read per step
        if self.world_size > 1:
            finite = not self._agree(not finite)[0]
        self.state.step += 1
        self.state.tokens_seen += x.numel() * self.world_size
        self.state.chars_seen += self.batches.target_chars(step, self.token_chars) * self.world_size
        self.state.lr = lr
        if not finite:
            return self._bad_step(step)
        self.optimizer.step()
        self.state.bad_steps = 0
        self.hidden = detach_state(new_hidden)  # float32 whatever autocast computed in (see detach_state)
        return loss.detach()

    def _sliced_loss_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Mean loss and its gradients with the logits made a slice of positions at a time.

        A 6,000-character vocabulary at B=T=64 makes 25M logits: with their fp32
        copy, log-softmax and gradients a step held ~350 MB more than the model.
        Here the recurrent part runs once, its output is cut off the graph, each
        slice is decoded and back-propagated into that output, and the output's
        gradient then flows through the recurrent part once: same loss and
        gradients (to float rounding), memory bounded by ``STEP_LOGITS_BUDGET``.
        Single process only: DDP expects one backward per forward.
        """
        with autocast_context(self.device, self.autocast_dtype):
            features, new_hidden = self.model.features(x, self.hidden)  # (B, T, H)
        cut = features.detach().requires_grad_()
        vocab = self.model.config.vocab_size
        width = max(1, STEP_LOGITS_BUDGET // (x.shape[0] * vocab))
        loss = torch.zeros((), device=x.device)
        for t0 in range(0, x.shape[1], width):
            with autocast_context(self.device, self.autocast_dtype):
                logits = self.model.decoder(cut[:, t0 : t0 + width])  # (B, t, V)
            part = F.cross_entropy(logits.float().reshape(-1, vocab), y[:, t0 : t0 + width].reshape(-1),
                                   reduction="sum") / y.numel()
            part.backward()
            loss += part.detach()
        features.backward(cut.grad)
        return loss, new_hidden

    def _bad_step(self, step: int) -> None:
        """Skip a NaN/inf step, halve the learning rate, and give up after ``max_bad_steps`` in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self.state.bad_steps += 1
        self.state.lr_scale *= 0.5
        self.emit("warning", message=f"non-finite loss at step {step}: step skipped, learning rate halved")
        if self.state.bad_steps >= self.config.max_bad_steps:
            best = self.out_dir / "best.safetensors"
            hint = f"; the last good checkpoint is {best}" if best.exists() else ""
            raise RnnlmError(
                f"training diverged: {self.state.bad_steps} non-finite steps in a row at step {step}{hint}; lower --lr"
            )
        return None

    def _evaluate_and_save(self, final: bool = False) -> EvalResult:
        """Validate, record, report, and keep the best checkpoint.

        ``eval_cost_s`` is the validation and save time alone: the calibration
        multiplies it by the number of validations to come, so the one-off cost
        of the first plot (importing matplotlib) must not be in it.
        """
        start = self.clock()
        val = self._shared(self.validate())
        self.eval_cost_s = self.clock() - start
        st = self.state
        improved = st.best_val_bpc is None or val.bpc < st.best_val_bpc
        if improved:
            st.best_val_bpc, st.evals_since_best = val.bpc, 0
        else:
            st.evals_since_best += 1
        st.curve.append([st.step, round(self._elapsed(), 3), val.bpc, st.chars_seen])
        self.emit("eval", val_bpc=val.bpc, val_loss=val.nats_per_token, val_ppl=val.perplexity, best=improved, final=final)
        if improved:
            start = self.clock()
            self.save("best.safetensors", val)
            self.eval_cost_s += self.clock() - start
        return val

    def run(self) -> dict[str, Any]:
        """Train until a budget, early stopping or a signal ends the run; returns a summary.

        Each turn asks what is due (stop, refit the time budget, validate,
        save), does it as a pause of the training clock, trains one window, and
        reports.  A time budget is fitted first after ``calibrate_steps``
        measured steps (:meth:`_first_fit`), then refitted at each validation.
        """
        cfg, st = self.config, self.state
        self._run_clock = clock = TrainingClock(self.clock)
        rate, window = StepRate(), LogWindow(st.chars_seen, st.tokens_seen, 0.0, clock.started)
        last_eval = last_save = clock.started
        steps_this_run, stop_reason = 0, "budget"
        self.model.train()
        self.emit("start", resumed=st.step > 0, params=num_parameters(self.model))
        with StopFlag() as self._flag:
            while True:
                now = clock.now()
                stop, do_eval, do_save, spent = self._agree(
                    self._over_budget(), steps_this_run > 0 and now - last_eval >= self.eval_interval(),
                    now - last_save >= cfg.save_every_s, self._plan_spent())
                if stop:
                    break
                if (spent or (do_eval and st.time_fitted)) and rate.steps_since(st.step) > 0:
                    self._calibrate(rate.seconds_per_step(st.step, clock.training_s(now)), self.eval_cost_s)
                    rate.start(st.step, clock.training_s(now))
                if do_eval:
                    with clock.pause():
                        self._evaluate_and_save()
                    last_eval = clock.now()
                    if cfg.patience and st.evals_since_best >= cfg.patience:
                        stop_reason = "early stopping"
                        break
                if do_save:
                    with clock.pause():
                        self.save("latest.safetensors")
                        self._rotate()
                    last_save = clock.now()
                window.add(self.train_step())
                steps_this_run += 1
                if cfg.max_time_s is not None and rate.mark is None and steps_this_run >= self._calibrate_skip():
                    rate.start(st.step, clock.training_s())  # a resumed, fitted run measures for its refits too
                elif cfg.max_time_s is not None and not st.time_fitted and rate.steps_since(st.step) >= cfg.calibrate_steps:
                    self._first_fit(rate, clock)
                    last_eval = clock.now()
                now = clock.now()
                if window.due(now, cfg.log_every_s):
                    figures = window.flush(st.chars_seen, st.tokens_seen, clock.training_s(now), now)
                    self.emit("log", **figures, lr=st.lr, dropout=self.model.dropout)
            signum = self._flag.signum
        train_s = clock.training_s()
        st.elapsed_s = self._elapsed()
        del self._run_clock
        if signum is not None:
            stop_reason = "interrupted"
        val = self._evaluate_and_save(final=True)
        self.save("latest.safetensors", val)
        self._rotate()
        summary = {"stop_reason": stop_reason, "val_bpc": val.bpc, "best_val_bpc": st.best_val_bpc,
                   "dropout": self.model.dropout, "dropout_auto": self.model.config.dropout is None,
                   "weight_drop": self.model.weight_drop, "embed_drop": self.model.embed_drop,
                   "state_reset": cfg.state_reset,
                   "steps": st.step, "chars_seen": st.chars_seen, "tokens_seen": st.tokens_seen,
                   "elapsed_s": st.elapsed_s, "train_s": train_s, "out_dir": str(self.out_dir)}
        self.emit("done", **summary)
        if signum is not None:
            code = 130 if signum == signal.SIGINT else 143
            raise Interrupted(f"interrupted at step {st.step}; saved {self.out_dir / 'latest.safetensors'}; "
                              f"continue with: rnnlm train ... --resume --out {self.out_dir}", code)
        return summary

    def _first_fit(self, rate: StepRate, clock: TrainingClock) -> None:
        """The time budget's first fit, from the measured steps and the first validation's cost.

        That validation runs now (and may save the best checkpoint) unless a
        probe says it would take over ``CHEAP_FIRST_EVAL`` of the budget (a big
        vocabulary's validation would eat a short run): then the probe's
        estimate stands in for its cost and the first real one waits for the
        cadence.
        """
        seconds = rate.seconds_per_step(self.state.step, clock.training_s())
        with clock.pause():
            estimate = self._probe_eval_cost()
            costly = self.config.eval_every_s is None and estimate > CHEAP_FIRST_EVAL * self.config.max_time_s
            if self._agree(costly)[0]:
                self.eval_cost_s = estimate
            else:
                self._evaluate_and_save()
        self._calibrate(seconds, self.eval_cost_s)
        rate.start(self.state.step, clock.training_s())

    def _rotate(self) -> None:
        """Keep ``step-N`` snapshots of the latest checkpoint, at most ``keep`` of them."""
        if self.rank != 0 or not self.config.keep:
            return
        latest = self.out_dir / "latest.safetensors"
        snapshot = self.out_dir / f"step-{self.state.step}.safetensors"
        if latest.exists() and not snapshot.exists():
            os.link(latest, snapshot)  # atomic and free; the next save replaces latest's inode, not this one
        snaps = sorted(self.out_dir.glob("step-*.safetensors"), key=lambda p: int(p.stem.split("-")[1]))
        for old in snaps[: -self.config.keep]:
            old.unlink(missing_ok=True)
