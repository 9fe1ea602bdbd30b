"""The one exception type for user-facing problems: the CLI prints its message and exits non-zero."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional


class FunnelrunError(Exception):
    """A problem with the user's input (config, data, checkpoint, output directory), with its fix."""


def unreadable(path: Path, exc: Optional[BaseException] = None) -> Optional[FunnelrunError]:
    """The error for a data file funnelrun may not read (``exc``, by default the exception being
    handled, is a PermissionError), or None when the problem is something else (a damaged file)."""
    exc = sys.exc_info()[1] if exc is None else exc
    if isinstance(exc, PermissionError):
        return FunnelrunError(
            f"cannot read {path}: permission denied ({exc.strerror or exc}); make it readable (chmod, or ask its "
            "owner) or point data.data_dir at a copy you can read"
        )
    return None


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
