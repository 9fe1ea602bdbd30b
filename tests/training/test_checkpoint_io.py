"""Checkpoints and outputs are atomic on every file system, and checkpoints cannot run code.

- :func:`funnelrun.run_files.atomic_file` writes beside the destination (never in ``$TMPDIR``, often
  another file system), and an error mid-write leaves the previous file byte-identical and no
  temporary file behind.
- A disk that fills during a checkpoint (injected ENOSPC; a real 320 KiB tmpfs where this process may
  mount one) ends the run with ``funnelrun: error:`` and exit 2, every ``*.ckpt`` left loadable.
- SIGKILL in the middle of a checkpoint write, or between the write and the rename, with the
  checkpoint on another file system than ``$TMPDIR``, leaves the previous checkpoint whole
  (``scripts/kill_during_write.py`` does the same to whole runs at random moments and resumes them).
- Every checkpoint is read with ``torch.load(weights_only=True)``: real funnelrun checkpoints load so,
  a crafted pickle is refused with a clear message and its code never runs.
"""
from __future__ import annotations

import errno
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from funnelrun.checkpoint import read_checkpoint
from funnelrun.errors import FunnelrunError
from funnelrun.run_files import TMP_SUFFIX, atomic_file, write_atomic
from funnelrun.training import checkpoint_io
from funnelrun.training.checkpoint_io import AtomicCheckpointIO

from conftest import TINY_NSF

pytestmark = pytest.mark.usefixtures("one_thread")
RUN = [*TINY_NSF, "model=nsf", "eval.plot=false"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    elsewhere = tmp_path / "tmpdir"  # $TMPDIR on "another file system": nothing may be written there
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    target = tmp_path / "run" / "metrics.json"
    write_atomic(target, "old\n")
    with pytest.raises(OSError, match="No space"):
        with atomic_file(target, "w") as f:
            f.write("new, half wri")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]
    assert not any(elsewhere.iterdir())
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_the_temporary_file_lies_in_the_destination_directory(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((Path(src).parent, Path(dst).parent, os.stat(src).st_dev == os.stat(Path(dst).parent).st_dev))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(3)}, tmp_path / "checkpoints" / "last.ckpt")
    assert seen == [(tmp_path / "checkpoints", tmp_path / "checkpoints", True)]
    assert torch.equal(read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["w"], torch.ones(3))


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.zeros(1000)}, path)
    before = _digest(path)
    real_save = torch.save

    def filling_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04" + b"\0" * 4096)  # part of a checkpoint, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", filling_save)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"step": 2, "w": torch.ones(1000)}, path)
    monkeypatch.setattr(checkpoint_io.torch, "save", real_save)
    assert _digest(path) == before and read_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_run_whose_disk_fills_at_a_checkpoint_stops_clearly_and_keeps_its_last_good_state(
        run_cli, tmp_path, monkeypatch):
    saves = []
    real = AtomicCheckpointIO.save_checkpoint

    def save(self, checkpoint, path, storage_options=None):
        saves.append(Path(path).name)
        if len(saves) == 3:  # best-step3 and last at step 3 written, then the disk fills
            with atomic_file(Path(path)) as f:
                f.write(b"partial checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", save)
    result = run_cli(tmp_path / "run", *RUN)
    assert result.code == 2, result.err[-2000:]
    assert "funnelrun: error:" in result.err and "No space left on device" in result.err
    assert "Traceback" not in result.err
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best-step3.ckpt", "last.ckpt"]
    assert read_checkpoint(ckpts / "last.ckpt")["global_step"] == 3
    assert not (tmp_path / "run" / "metrics.json").exists()


def _try_mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_a_real_full_disk_leaves_every_checkpoint_whole(run_cli, tmp_path):
    """The run directory on a small tmpfs (another file system than $TMPDIR), sized from a run of the
    same config: room for its other files and 2.5 checkpoints, so the first write of a checkpoint
    beside two others (a new best while the old best and last.ckpt exist) fills it."""
    whole = run_cli(tmp_path / "measure", *RUN)
    assert whole.code == 0, whole.err[-2000:]
    files = [p for p in (tmp_path / "measure").rglob("*") if p.is_file()]
    ckpt = max(p.stat().st_size for p in files if p.suffix == ".ckpt")
    others = sum(max(p.stat().st_size, 4096) for p in files if p.suffix != ".ckpt")
    mount = tmp_path / "small"
    if not _try_mount_tmpfs(mount, f"{(others + ckpt * 5 // 2) // 1024 + 8}k"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the injected ENOSPC tests cover it")
    try:
        result = run_cli(mount / "run", *RUN, "trainer.max_steps=12", "trainer.val_check_interval=3")
        assert result.code == 2, result.err[-2000:]
        assert "No space left on device" in result.err and "Traceback" not in result.err
        names = [p.name for p in (mount / "run" / "checkpoints").iterdir()]
        assert "last.ckpt" in names and not [n for n in names if n.endswith(TMP_SUFFIX)]
        for name in names:
            read_checkpoint(mount / "run" / "checkpoints" / name)  # each one whole
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# -- weights only ----------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker, ckpt = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, ckpt)
    # the payload really would run under a plain (weights_only=False) load
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(ckpt)!r}, weights_only=False)"],
                   capture_output=True)
    assert marker.exists()
    marker.unlink()
    return ckpt, marker


def test_a_crafted_pickle_is_refused_and_never_run(tmp_path):
    ckpt, marker = _crafted(tmp_path)
    with pytest.raises(FunnelrunError, match="refused to load .*evil.ckpt.*weights_only=True"):
        read_checkpoint(ckpt)
    with pytest.raises(FunnelrunError, match="refused"):
        AtomicCheckpointIO().load_checkpoint(ckpt)
    assert not marker.exists()


def test_a_crafted_pickle_given_to_the_cli_is_refused_and_never_run(run_cli, tmp_path):
    ckpt, marker = _crafted(tmp_path)
    result = run_cli(tmp_path / "new", *RUN, f"ckpt_path={ckpt}")
    assert result.code == 2 and "funnelrun: error: refused to load" in result.err, result.err[-2000:]
    assert "Traceback" not in result.err and not marker.exists()
    assert not (tmp_path / "new").exists()


def test_real_checkpoints_load_weights_only(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *RUN)
    assert result.code == 0, result.err[-2000:]
    for ckpt in (tmp_path / "run" / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(ckpt, weights_only=True)  # no safe globals needed
        assert checkpoint["global_step"] == 6 and "funnelrun" in checkpoint
    assert pickle.HIGHEST_PROTOCOL  # (pickle imported for the payload's protocol)


# -- SIGKILL while a checkpoint is written, the run directory on another file system than $TMPDIR -----
KILLED_WRITER = r"""
import os, sys, time
from pathlib import Path
import torch
from funnelrun import run_files
from funnelrun.training.checkpoint_io import AtomicCheckpointIO
path, stage = Path(sys.argv[1]), sys.argv[2]
real_replace = os.replace
def replace(src, dst):  # the failure injected between the write and the rename
    if stage == "before-rename":
        print("written", flush=True)
        time.sleep(600)
    real_replace(src, dst)
run_files.os.replace = replace
real_save = torch.save
def save(obj, f):
    if stage == "mid-write":
        f.write(b"PK\x03\x04" + b"\0" * 65536)
        f.flush()
        print("written", flush=True)
        time.sleep(600)
    real_save(obj, f)
torch.save = save
AtomicCheckpointIO().save_checkpoint({"step": 2, "w": torch.ones(100000)}, path)
"""


def _other_file_system(tmp_path: Path) -> Path:
    """A directory on another file system than $TMPDIR (tmp_path's): a tmpfs mounted here, else /dev/shm."""
    mount = tmp_path / "mnt"
    if _try_mount_tmpfs(mount, "16m"):
        return mount
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.stat(shm).st_dev != os.stat(tmp_path).st_dev:
        return Path(tempfile.mkdtemp(dir=shm))
    pytest.skip("no second file system here (no tmpfs mount, no /dev/shm)")


@pytest.mark.parametrize("stage", ["mid-write", "before-rename"])
def test_sigkill_while_a_checkpoint_is_written_keeps_the_previous_one(tmp_path, stage):
    other = _other_file_system(tmp_path)
    try:
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        path = other / "checkpoints" / "last.ckpt"
        AtomicCheckpointIO().save_checkpoint({"step": 1, "w": torch.zeros(100000)}, path)
        before = _digest(path)
        env = {**os.environ, "TMPDIR": str(tmp_path)}  # $TMPDIR on the other file system
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), stage], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "written"
        proc.kill()
        proc.wait()
        assert _digest(path) == before and read_checkpoint(path)["step"] == 1
        assert not [p for p in tmp_path.iterdir() if p.name != "mnt"]  # nothing went through $TMPDIR
        # the killed writer's temporary file is never a *.ckpt, so nothing reads it as a checkpoint
        assert [p.name for p in path.parent.glob("*.ckpt")] == ["last.ckpt"]
    finally:
        subprocess.run(["umount", str(other)], check=False, capture_output=True)
        if other.parent == Path("/dev/shm"):
            shutil.rmtree(other, ignore_errors=True)
