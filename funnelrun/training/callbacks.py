"""Checkpoint callbacks: "best" only ever names a finite validation score; interrupts save state."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class FiniteModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose top-k ("best") ignores non-finite monitored values.

    Lightning ranks a NaN score as +inf, which still becomes "best" when nothing better exists; here
    a NaN/inf validation NLL is never a candidate (the ``last`` checkpoint is still written).
    """

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        current = monitor_candidates.get(self.monitor) if self.monitor else None
        if current is not None and not math.isfinite(float(current)):
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)


class CheckpointOnInterrupt(Callback):
    """On SIGTERM (Lightning stops at a step boundary) or Ctrl-C, save the current state to
    ``<dirpath>/last.ckpt`` so ``ckpt_path=last`` resumes exactly there. Unlike Lightning's
    OnExceptionCheckpoint it never deletes the file afterwards, and it does not save after other
    errors (a failing run's state is not a "last good" one)."""

    def __init__(self, dirpath: Path):
        super().__init__()
        self.path = Path(dirpath) / "last.ckpt"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            trainer.save_checkpoint(self.path)
