"""The files of a run directory (their names) and atomic writes: a reader never sees half a file.

Every output of a run (``metrics.json``, ``config.yaml``, plots, checkpoints through
:class:`funnelrun.training.checkpoint_io.AtomicCheckpointIO`) is written by :func:`atomic_file`:
into a temporary file *in the destination's own directory* (never ``$TMPDIR``, which is often
another file system, where a "move" is a copy that a kill can tear), flushed and fsynced, renamed
over the destination with ``os.replace`` (atomic within one file system), and the directory
fsynced so the rename survives a power cut. Until the rename the previous file stays whole; on any
error (a full disk, a signal) the temporary file is removed and the previous file is untouched.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Union

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
#: a sweep job that failed says why here (instead of metrics.json)
FAILURE_FILE = "failure.json"
#: earlier results of a run that was extended (``trainer.max_steps`` raised): ``history/step<N>/``
HISTORY_DIR = "history"
#: the suffix of atomic writes' temporary files (never a name a reader looks for, e.g. ``*.ckpt``)
TMP_SUFFIX = ".tmp"


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Union[str, Path], mode: str = "wb") -> Iterator[IO[Any]]:
    """``with atomic_file(path) as f: f.write(...)``: ``path`` appears whole when the block ends, or
    not at all (the previous file, if any, stays as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_file`)."""
    with atomic_file(path, "w") as f:
        f.write(text)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def relative_to_run(path: Union[str, Path, None], run_dir: Path) -> Union[str, None]:
    """``path`` relative to ``run_dir`` when inside it (paths stored in a run stay valid when the
    run directory is moved or copied); otherwise as given."""
    if path is None or str(path) == "":
        return None
    try:
        return str(Path(path).resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(path)
