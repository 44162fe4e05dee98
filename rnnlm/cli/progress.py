"""Trainer events rendered for people: a rich progress bar on a terminal, plain lines otherwise.

Everything goes to stderr, so stdout carries only results (docs/developer/rules.md).
This and ``cli.py`` are the only modules that import rich.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rnnlm.training.events import Event


class TrainProgress:
    """Subscribes to trainer events; ``plain_every_s`` paces the non-terminal lines."""

    def __init__(self, console: Console | None = None, plain_every_s: float = 10.0) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)  # plain lines stay whole in logs
        self.plain = not self.console.is_terminal
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self.fields = {"loss": float("nan"), "bpc": float("nan"), "val": float("nan"), "speed": 0.0}
        self.progress: Progress | None = None
        self.task = None
        self.phases = PhaseLines(self.console)

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def on_start(self, event: Event) -> None:
        verb = "resuming" if event.data.get("resumed") else "training"
        self.console.print(f"[bold]{verb}[/] {event.data['params']:,} parameters from step {event.step}")
        if self.plain:
            return
        self.progress = Progress(
            TextColumn("[bold blue]step {task.completed:>6.0f}/{task.fields[total_label]}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  bpc {task.fields[bpc]:.3f}  val {task.fields[val]:.3f}"),
            TextColumn("{task.fields[speed]:>7,.0f} chars/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=event.total_steps, completed=event.step,
                                           total_label=event.total_steps or "?", **self.fields)

    def _update(self, event: Event) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=event.step, total=event.total_steps,
                                 total_label=event.total_steps or "?", **self.fields)
        elif time.monotonic() - self._last_plain >= self.plain_every_s:
            self._last_plain = time.monotonic()
            total = event.total_steps or "?"
            f = {k: "–" if v != v else f"{v:.3f}" for k, v in self.fields.items() if k != "speed"}  # NaN: not yet known
            self.console.print(
                f"step {event.step}/{total}  {event.elapsed_s / 60:5.1f} min  loss {f['loss']}  bpc {f['bpc']}  "
                f"val bpc {f['val']}  {self.fields['speed']:,.0f} chars/s",
                highlight=False,
            )

    def on_log(self, event: Event) -> None:
        self.fields.update(loss=event.data["loss"], bpc=event.data["bpc"], speed=event.data["chars_per_s"])
        self._update(event)

    def on_eval(self, event: Event) -> None:
        self.fields["val"] = event.data["val_bpc"]
        self._update(event)

    def on_phase(self, event: Event) -> None:
        self.phases(event.data["name"], event.data["done"], event.data["total"])

    def on_size(self, event: Event) -> None:
        self.console.print(f"[bold]size[/] {event.data['reason']} (probe {event.data['probe_s']:.1f} s)",
                           highlight=False)

    def on_warning(self, event: Event) -> None:
        self.console.print(f"[yellow]warning:[/] {event.data['message']}")

    def on_done(self, event: Event) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=event.step, total=event.step, total_label=event.step)
            self.progress.stop()
        d = event.data
        self.console.print(
            f"[bold green]done[/] ({d['stop_reason']}): {d['steps']} steps, {d['elapsed_s'] / 60:.1f} min, "
            f"dropout {d['dropout']:g}{' (auto)' if d['dropout_auto'] else ''}, "
            + "".join(f"{name.replace('_', ' ')} {d[name]:g}, " for name in ("weight_drop", "embed_drop", "state_reset")
                      if d.get(name)) +
            f"val bpc {d['val_bpc']:.4f} (best {d['best_val_bpc']:.4f}) → {d['out_dir']}",
            highlight=False,
        )

    def close(self) -> None:
        """Stop the live display (after an error or an interrupt)."""
        if self.progress is not None:
            self.progress.stop()


class PhaseLines:
    """Long phases (scanning, encoding, building a subword model, validating) as plain stderr lines.

    Called as ``(name, done, total)``: a line every ``every_s`` seconds while a
    phase runs, and one when it ends if it took a second or more, so a small
    corpus stays quiet and a 100 MB one never looks stuck.  ``total == 0``
    announces a phase with no measure of its own (a sentencepiece build).
    """

    def __init__(self, console: Console | None = None, every_s: float = 5.0) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.every_s = every_s
        self.name: str | None = None
        self.start = self.last = 0.0

    def __call__(self, name: str, done: int, total: int) -> None:
        now = time.monotonic()
        if name != self.name:
            self.name, self.start, self.last = name, now, now
            if total == 0:
                self.console.print(f"{name}…", highlight=False)
        if total and done >= total or total == 0 and done:
            if now - self.start >= 1.0:
                self.console.print(f"{name}: done in {now - self.start:.1f} s", highlight=False)
            self.name = None
        elif total and now - self.last >= self.every_s:
            self.last = now
            self.console.print(f"{name}: {100 * done / total:.0f}% ({now - self.start:.0f} s)", highlight=False)
