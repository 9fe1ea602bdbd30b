"""Checkpoint callbacks: "best" only ever names a finite validation score; interrupts save state."""
from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class FiniteModelCheckpoint(ModelCheckpoint):
    """The run's ModelCheckpoint: ``last.ckpt`` and the best-by-validation ``best-step<N>.ckpt``.

    - "Best" ignores non-finite monitored values. Lightning ranks a NaN score as +inf, which still
      becomes "best" when nothing better exists; here a NaN/inf validation NLL is never a candidate
      (the ``last`` checkpoint is still written).
    - One ``last.ckpt``, always the newest: no version counter (Lightning writes ``last-v1.ckpt``
      beside a ``last.ckpt`` it did not write itself, e.g. one saved on a signal before the first
      validation, and a later resume would then read the stale one). Writes are atomic
      (:class:`~funnelrun.training.checkpoint_io.AtomicCheckpointIO`), so replacing is safe.
    - Paths in its state are stored relative to its directory and resolved against the current one
      on loading: a moved or copied run directory resumes with its best score and best checkpoint
      (Lightning keeps absolute paths and drops the score when the directory changed).
    """

    def __init__(self, **kwargs: Any):
        super().__init__(enable_version_counter=False, **kwargs)

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        current = monitor_candidates.get(self.monitor) if self.monitor else None
        if current is not None and not math.isfinite(float(current)):
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``last.ckpt`` holds the final step (Lightning saves it at validations only, so a
        ``max_steps`` between two of them left it behind): a run stopped during its test, or one
        extended later, continues from where training ended."""
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)

    def _relative(self, path: Any) -> Any:
        if not isinstance(path, str) or not path or self.dirpath is None:
            return path
        try:
            return str(Path(path).relative_to(self.dirpath))
        except ValueError:
            return path

    def _absolute(self, path: Any) -> Any:
        if not isinstance(path, str) or not path or self.dirpath is None or Path(path).is_absolute():
            return path
        return str(Path(self.dirpath) / path)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key in RELATIVE_PATH_KEYS:
            state[key] = self._relative(state.get(key))
        state["best_k_models"] = {self._relative(k): v for k, v in (state.get("best_k_models") or {}).items()}
        state["dirpath"] = RELATIVE_DIRPATH
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        if state.get("dirpath") == RELATIVE_DIRPATH:  # written by this class: paths are relative
            state["dirpath"] = self.dirpath
            for key in RELATIVE_PATH_KEYS:
                state[key] = self._absolute(state.get(key))
            state["best_k_models"] = {self._absolute(k): v for k, v in (state.get("best_k_models") or {}).items()}
            _forget_files_elsewhere(state)
        super().load_state_dict(state)


def _forget_files_elsewhere(state: dict[str, Any]) -> None:
    """Continuing another run's checkpoint in a new directory: its best/top-k files stay in that run
    (never deleted or rewritten from here), so this run tracks its own best from its own validations."""
    state["best_k_models"] = {k: v for k, v in state["best_k_models"].items() if Path(k).is_file()}
    if state.get("best_model_path") and not Path(state["best_model_path"]).is_file():
        state["best_model_path"], state["best_model_score"] = "", None
    if state.get("kth_best_model_path") and not Path(state["kth_best_model_path"]).is_file():
        state["kth_best_model_path"] = ""
        state.pop("kth_value", None)  # the callback's initial value (inf for a minimised metric)


#: ModelCheckpoint state entries that name a checkpoint file
RELATIVE_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")
#: the ``dirpath`` a :class:`FiniteModelCheckpoint` stores: its paths are relative to wherever it is now
RELATIVE_DIRPATH = "<relative to the checkpoints directory>"


class CheckpointOnInterrupt(Callback):
    """On SIGTERM (Lightning stops at a step boundary), save the current state to
    ``<dirpath>/last.ckpt`` so ``ckpt_path=last`` resumes exactly there. Unlike Lightning's
    OnExceptionCheckpoint it never deletes the file afterwards, and it does not save after other
    errors (a failing run's state is not a "last good" one), nor after a KeyboardInterrupt, which
    can arrive in the middle of a step (a first Ctrl-C stops at a step boundary instead,
    :class:`CheckpointOnSignal`)."""

    def __init__(self, dirpath: Path):
        super().__init__()
        self.path = Path(dirpath) / "last.ckpt"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)


#: the signals that stop a run: Ctrl-C, SIGTERM (scancel, preemption), SLURM's warnings
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class StopSignal(Exception):
    """Training stopped at a step boundary on a signal, after saving a checkpoint."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class CheckpointOnSignal(Callback):
    """On SIGUSR1 or SIGUSR2 (what SLURM sends ahead of a time limit or a preemption: ``--signal=
    USR1@90`` by hand, USR2 from submitit, ``hydra/launcher=slurm``), save ``<dirpath>/last.ckpt``
    at the next step boundary, then pass the signal on to the handler installed before it
    (submitit's checkpoint-and-requeue) or, with none, stop the run as SIGTERM does. Either way a
    relaunch of the job resumes there (``auto_resume``).

    Ctrl-C (SIGINT) does the same as SIGTERM: save at the next step boundary and stop (a second
    Ctrl-C stops at once). After training (the test, the plots) any of these signals stops at once
    (:func:`stop_on_signals`); resuming goes on from the last checkpoint and tests.

    Under DDP the ranks agree on the flag (an all-reduce every ``ddp_check_every`` steps), so they
    save together wherever the signal arrived.
    """

    def __init__(self, dirpath: Path,
                 signums: tuple[int, ...] = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT),
                 ddp_check_every: int = 20):
        super().__init__()
        self.path = Path(dirpath) / "last.ckpt"
        self.signums = signums
        self.ddp_check_every = ddp_check_every
        self.received: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT:
            if self.received == signal.SIGINT:  # pressed twice: stop now, saving nothing more
                os.write(2, b"\nCtrl-C again: quitting at once (the last checkpoint saved stays)\n")
                raise KeyboardInterrupt
            os.write(2, b"\nCtrl-C: saving a checkpoint at the end of this step (press again to quit at once)\n")
        self.received = signum

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = {s: signal.signal(s, self._note) for s in self.signums}

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _stop_now(self, trainer: pl.Trainer) -> bool:
        if trainer.world_size == 1:
            return self.received is not None
        if trainer.global_step % self.ddp_check_every:
            return False
        return bool(trainer.strategy.reduce_boolean_decision(self.received is not None, all=False))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if not self._stop_now(trainer):
            return
        trainer.save_checkpoint(self.path)
        signum = self.received if self.received is not None else self.signums[0]
        previous = self._previous.get(signum)
        self._restore()
        if callable(previous) and signum != signal.SIGINT:  # Python's own SIGINT handler raises KeyboardInterrupt
            previous(signum, None)  # submitit: requeue this job, then exit
        raise StopSignal(signum)


@contextmanager
def stop_on_signals(signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, any of ``signums`` raises :class:`StopSignal` at once (a run's test and its
    outputs after training: nothing there is worth finishing half, and last.ckpt already holds the
    training, so the caller exits non-zero and the next launch tests again). Lightning's own SIGTERM
    handler, installed during ``trainer.test``, calls the one set here too."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise StopSignal(signum)

    previous = {signum: signal.signal(signum, stop) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
