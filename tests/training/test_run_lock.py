"""One process per run directory: a second command on a directory in use stops with a message that
names the process holding it, and writes nothing there."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funnelrun.run_lock import LOCK_FILE, RunDirectoryLocked, run_lock

from conftest import TINY_NSF

pytestmark = pytest.mark.usefixtures("one_thread")
FUNNELRUN = str(Path(sys.executable).with_name("funnelrun"))


def test_the_lock_is_exclusive_names_its_holder_and_goes_with_it(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunDirectoryLocked, match=f"in use by process {os.getpid()} on "):
            with run_lock(tmp_path):
                pass
    assert not (tmp_path / LOCK_FILE).exists()
    with run_lock(tmp_path):  # free again
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from funnelrun.run_lock import run_lock\n"
                               "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirectoryLocked, match=f"process {holder.pid} "):
        with run_lock(tmp_path):
            pass
    holder.kill()
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # SIGKILL: the file stays, the kernel released the lock
    with run_lock(tmp_path):
        pass


def test_a_command_on_a_directory_in_use_stops_and_writes_nothing(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    with run_lock(run_dir):
        before = sorted(p.name for p in run_dir.iterdir())
        result = run_cli(run_dir, *TINY_NSF, "model=nsf", "eval.plot=false")
        assert sorted(p.name for p in run_dir.iterdir()) == before
    assert result.code == 2, result.err[-2000:]
    assert f"funnelrun: error: {run_dir} is in use by process {os.getpid()}" in result.err
    assert "Traceback" not in result.err


@pytest.mark.slow  # two processes, ~2 min on the shared machine; the in-process test above is the default one
def test_two_identical_commands_train_once(tmp_path):
    """The first trains (long enough to be running still when the second has started), the second
    stops naming it; the first, stopped by SIGTERM, leaves one last.ckpt and one CSV version."""
    run_dir = tmp_path / "run"
    argv = [FUNNELRUN, f"hydra.run.dir={run_dir}", *TINY_NSF, "model=nsf", "eval.plot=false",
            "data.n_train=2048", "trainer.max_steps=1000000", "trainer.val_check_interval=50"]
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (run_dir / "config.yaml").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert first.poll() is None, "the first command ended before the second started"
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 143, err[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"is in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in names and not [n for n in names if "-v" in n]
    assert [p.name for p in (run_dir / "csv").iterdir()] == ["version_0"]
    assert not (run_dir / LOCK_FILE).exists()
