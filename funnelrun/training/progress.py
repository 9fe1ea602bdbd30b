"""Training progress as users of other trainers know it, on Lightning's progress-bar callbacks.

- On a terminal, :class:`StepBar` (Lightning's tqdm bar) runs over the whole run's
  ``trainer.max_steps``, not per epoch: steps done, loss, validation NLL, steps/s and ETA; the
  validation and test loops get their own bars.
- Everywhere, :class:`StepLines` writes one line every ``log_every_s`` seconds with the same fields
  (``step 1200/3000 (40%) | loss 1.234 | val NLL 1.198 | 25.1 steps/s | ETA 1m12s``), one per
  ``log_every_s`` during the test (importance sampling of a bound model can take minutes) and one
  at the end of each. Without a bar (a SLURM log), or with stdout redirected (``funnelrun > log``
  beside the bar), it prints them; else it writes them to ``<run>/funnelrun.log`` only
  (:mod:`funnelrun.console`).

:func:`quiet_lightning` removes Lightning's chatter that says nothing about the run (tips, "GPU
available", a model summary with ``FLOPs 0``, checkpoint-restoring notes, warnings about settings
funnelrun chose on purpose)."""
from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from typing import Any, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from funnelrun.console import duration, lines_printed, log_only, on_terminal, rate_and_eta, terminal

#: Lightning's warnings about choices funnelrun makes deliberately (or emitted inside Lightning itself)
_EXPECTED_WARNINGS = (
    # the training log is written every trainer.log_every_n_steps, across the (short) epochs of small sets
    r".*is smaller than the logging interval.*",
    # a deprecation inside Lightning's own pytree helper, nothing a user can act on
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    # the DataModule loads data in the main process by default (data.num_workers)
    r".*does not have many workers.*",
    # a resumed run writes into its own checkpoints/ again; a continued one into its new directory
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*The dirpath has changed from .* won't be reloaded.*",
    # the DataModule resumes mid-epoch exactly (its state carries the step; see data/base.py)
    r".*resuming from a checkpoint that ended before the epoch ended.*",
)


def quiet_lightning() -> None:
    """Lightning's informational lines off (its warnings stay), the expected warnings filtered."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in _EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def _metric(trainer: pl.Trainer, key: str) -> Optional[float]:
    value = trainer.progress_bar_metrics.get(key, trainer.callback_metrics.get(key))
    return None if value is None else float(value)


def step_fields(trainer: pl.Trainer, loss: Optional[float] = None) -> dict[str, str]:
    """The fields both forms show: the training loss (``loss``, else the last logged ``train/loss``)
    and the latest validation NLL."""
    fields = {}
    loss = _metric(trainer, "train/loss") if loss is None else loss
    for name, value in (("loss", loss), ("val NLL", _metric(trainer, "val/nll"))):
        if value is not None:
            fields[name] = f"{value:.4f}"
    return fields


def _batches(n: Optional[int]) -> str:
    return f"{'?' if n is None else n} batch{'' if n == 1 else 'es'}"


def _loss(outputs: Any) -> Optional[float]:
    """This step's training loss, from what ``training_step`` returned (read only when a line is due:
    on a GPU it waits for the step)."""
    loss: Any = outputs.get("loss") if isinstance(outputs, dict) else outputs
    try:
        return float(loss)
    except (TypeError, ValueError, RuntimeError):
        return None


class StepBar(TQDMProgressBar):
    """Lightning's tqdm bar over ``trainer.max_steps`` (a resumed run starts at its step), drawn on
    the terminal's stderr only (never copied into the run's log)."""

    TRAIN_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"

    def _on_terminal(self, make: Any) -> Any:
        """Lightning draws its bars on sys.stdout: here on the terminal's stderr (the stream that was
        found to be a terminal; stdout may be redirected to a file), without the log's copy."""
        out = sys.stdout
        sys.stdout = terminal(sys.stderr)
        try:
            return make()
        finally:
            sys.stdout = out

    def init_sanity_tqdm(self) -> Any:
        return self._on_terminal(super().init_sanity_tqdm)

    def init_validation_tqdm(self) -> Any:
        return self._on_terminal(super().init_validation_tqdm)

    def init_test_tqdm(self) -> Any:
        return self._on_terminal(super().init_test_tqdm)

    def init_predict_tqdm(self) -> Any:
        return self._on_terminal(super().init_predict_tqdm)

    def init_train_tqdm(self) -> Any:
        bar = self._on_terminal(super().init_train_tqdm)
        bar.bar_format, bar.unit = self.TRAIN_FORMAT, " steps"
        return bar

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        bar = self.train_progress_bar
        if bar.total != trainer.max_steps:  # once per run, not per epoch
            bar.reset(total=trainer.max_steps)
            bar.initial = bar.n = trainer.global_step
            bar.set_description("train")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_: Any) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return step_fields(trainer)  # no v_num, no raw metric names


class StepLines(Callback):
    """A progress line every ``every_s`` seconds and at the end of training and of the test; printed
    (console and log) when ``to_console``, else written to the run's log only (a bar is showing)."""

    def __init__(self, every_s: float = 30.0, to_console: bool = True, name: str = ""):
        super().__init__()
        self.every_s, self.to_console, self.name = every_s, to_console, name
        self._start = self._last = 0.0
        self._first_step = 0
        self._loss: Optional[float] = None
        self._test_done = 0

    def _emit(self, trainer: pl.Trainer, text: str) -> None:
        if not trainer.is_global_zero:
            return
        if self.to_console:
            print(text, flush=True)
        else:
            log_only(text)

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True

    # -- training -----------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        self._first_step = trainer.global_step
        model = getattr(pl_module, "model", pl_module)
        params = sum(p.numel() for p in model.parameters())
        shape = f"latent dim {model.latent_dim} of {model.data_dim}, " if hasattr(model, "latent_dim") else ""
        kind = "" if not hasattr(model, "exact") else ("exact, " if model.exact else "a bound, ")
        start = f" from step {trainer.global_step}" if trainer.global_step else ""
        self._emit(trainer, f"training {self.name}: {params:,} parameters, {shape}{kind}{trainer.max_steps} steps"
                            f"{start} (a progress line every {self.every_s:g} s)")

    def step_line(self, trainer: pl.Trainer, loss: Optional[float] = None) -> str:
        step, total = trainer.global_step, trainer.max_steps
        elapsed = time.monotonic() - self._start
        rate, left = rate_and_eta(step - self._first_step, total - self._first_step, elapsed)
        percent = f" ({100 * step / total:.0f}%)" if total > 0 else ""
        parts = [f"step {step}/{total}{percent}", *(f"{k} {v}" for k, v in step_fields(trainer, loss).items()),
                 f"{rate:.1f} steps/s", f"ETA {duration(left)}"]
        return " | ".join(parts)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           *_: Any) -> None:
        if self._due():
            self._loss = _loss(outputs)
            self._emit(trainer, self.step_line(trainer, self._loss))
        elif trainer.global_step >= trainer.max_steps:
            self._loss = _loss(outputs)  # the last step's, for the closing line

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        elapsed = time.monotonic() - self._start
        fields = " | ".join(f"{k} {v}" for k, v in step_fields(trainer, self._loss).items())
        self._emit(trainer, f"trained to step {trainer.global_step} in {duration(elapsed)}"
                            + (f" | {fields}" if fields else ""))

    # -- test -----------------------------------------------------------------------------------
    def _test_batches(self, trainer: pl.Trainer) -> Optional[int]:
        total = sum(trainer.num_test_batches) if trainer.num_test_batches else None
        return int(total) if total is not None and math.isfinite(total) else None

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        self._test_done = 0
        model = getattr(pl_module, "model", None)
        how = ""
        if model is not None and not getattr(model, "exact", True):
            how = f", importance sampling with {pl_module.is_samples} samples per example"
        self._emit(trainer, f"test: {_batches(self._test_batches(trainer))}{how}")

    def on_test_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        self._test_done += 1
        if self._due():
            total = self._test_batches(trainer)
            elapsed = time.monotonic() - self._start
            rate, left = rate_and_eta(self._test_done, total, elapsed)
            of = f"/{total} batches ({100 * self._test_done / total:.0f}%)" if total else " batches"
            self._emit(trainer, f"test: {self._test_done}{of} | {rate:.2f} batches/s | ETA {duration(left)}")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._emit(trainer, f"test: {_batches(self._test_done)} in {duration(time.monotonic() - self._start)}")


def progress_callbacks(every_s: float, bar: Optional[bool], name: str = "") -> tuple[list[Callback], bool]:
    """The progress callbacks of a run and Lightning's ``enable_progress_bar``: ``bar`` None draws a
    bar on an interactive terminal only; lines are written in every case."""
    draw = on_terminal() if bar is None else bool(bar)
    callbacks: list[Callback] = [StepLines(every_s, to_console=lines_printed(draw), name=name)]
    if draw:
        callbacks.insert(0, StepBar())
    return callbacks, draw
