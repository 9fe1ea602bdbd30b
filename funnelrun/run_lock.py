"""One process per run directory: an exclusive ``flock`` on ``<run>/.funnelrun.lock``.

Two identical commands on one run directory (a job started twice, a requeue racing a job still
running) would both train into it: checkpoints overwriting each other, two CSV versions. The first
takes the lock and writes its pid, host and start time into the lock file; the second finds the
lock held and stops with a message naming that process. The kernel releases a ``flock`` when its
process ends, however it ends (SIGKILL included), so a crashed run never leaves a stale lock; the
file itself is removed on a clean exit. No lock is taken where the file system refuses ``flock``
(some network file systems): a warning says so and the run goes on.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from funnelrun.errors import FunnelrunError

LOCK_FILE = ".funnelrun.lock"


class RunDirectoryLocked(FunnelrunError):
    """Another process holds the run directory."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"process {info.get('pid')} on {info.get('host')} (started {started}: {info.get('command', '?')})"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this process until the block ends; :class:`RunDirectoryLocked` if another holds it."""
    path = run_dir / LOCK_FILE
    while True:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # an unwritable directory: the run's first write says so clearly
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirectoryLocked(
                f"{run_dir} is in use by {_holder(path)}; two funnelrun processes never write into one run "
                f"directory. Wait for it to finish, stop it (kill <pid>; it saves a checkpoint and this command "
                f"then resumes the run), or choose another hydra.run.dir"
            ) from None
        except OSError as exc:  # flock not supported here
            os.close(fd)
            print(f"warning: cannot lock {path} ({exc.strerror}); nothing stops a second process from "
                  f"writing into this run directory", file=sys.stderr, flush=True)
            yield
            return
        # the holder before us may have removed the file after we opened it: lock the file on disk
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": " ".join(["funnelrun", *sys.argv[1:]])[:500]}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the lock
