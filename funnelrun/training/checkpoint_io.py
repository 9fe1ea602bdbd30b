"""How every Lightning checkpoint of a run is written and read: atomically in the run directory's own
file system, and without running code.

Lightning's default (:class:`~lightning.fabric.plugins.io.TorchCheckpointIO`) saves through fsspec,
whose "transaction" writes a temporary file under ``$TMPDIR`` and then *copies* it into place when
the run directory is on another file system (the usual cluster: local ``/tmp``, shared outputs): a
SIGKILL during the copy leaves a torn ``last.ckpt`` and the previous good state gone. Here a
checkpoint is written by :func:`funnelrun.run_files.atomic_file` (a temporary file beside the
destination, fsync, ``os.replace``, fsync of the directory): the previous ``last.ckpt`` stays
whole until the new one is, and a full disk removes the temporary file and leaves every earlier
file as it was.

Loading is always ``torch.load(weights_only=True)`` (:func:`funnelrun.checkpoint.load_checkpoint_file`):
a crafted pickle is refused before any of its code runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from funnelrun.checkpoint import load_checkpoint_file
from funnelrun.run_files import atomic_file, fsync_dir


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO that writes through a same-directory temporary file and reads weights only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_file(Path(path)) as f:
            torch.save(checkpoint, f)

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Optional[Callable] = lambda storage, loc: storage,
        weights_only: Optional[bool] = None,
    ) -> dict[str, Any]:
        return load_checkpoint_file(Path(path), map_location=map_location)

    def remove_checkpoint(self, path: _PATH) -> None:
        Path(path).unlink(missing_ok=True)
        fsync_dir(Path(path).parent)
