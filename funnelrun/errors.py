"""The one exception type for user-facing problems: the CLI prints its message and exits non-zero."""
from __future__ import annotations

from pathlib import Path


class FunnelrunError(Exception):
    """A problem with the user's input (config, data, checkpoint, output directory), with its fix."""


class RunInterrupted(FunnelrunError):
    """The run was stopped by a signal after saving a checkpoint it can resume from.

    ``resume_dir`` is the run directory to relaunch in (a pipeline of several runs, e.g. log-det
    masking's stage 1 in ``<run>/stage1``, names its own directory instead)."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path, resume_dir: Path):
        self.signal_name, self.step, self.checkpoint, self.resume_dir = signal_name, step, checkpoint, resume_dir
        super().__init__(str(self))

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C (128 + SIGINT), else 143 (128 + SIGTERM), as shells report such a stop."""
        return 130 if self.signal_name == "SIGINT" else 143

    def __str__(self) -> str:
        return (
            f"stopped by {self.signal_name} at step {self.step}; its state is saved in {self.checkpoint}. "
            f"Resume by running the same command with hydra.run.dir={self.resume_dir} (auto_resume), or add "
            f"ckpt_path=last"
        )

    def resumed_in(self, resume_dir: Path) -> "RunInterrupted":
        """The same stop, with the directory to relaunch in replaced."""
        return RunInterrupted(self.signal_name, self.step, self.checkpoint, resume_dir)
