"""Determinism: the same config and seed give the same numbers; a run stopped by SIGTERM, SIGUSR1
(SLURM's warning before a time limit) or SIGKILL after a checkpoint, and resumed with ckpt_path=last
or by running the same command again (auto_resume), ends where the uninterrupted run ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_NSF

FUNNELRUN = str(Path(sys.executable).with_name("funnelrun"))
#: long enough (a few seconds) to be interrupted mid-way, validating every 20 steps
LONG = [*TINY_NSF, "model=nsf", "data.n_train=2048", "trainer.max_steps=400", "trainer.val_check_interval=20",
        "eval.plot=false"]
RESULT_KEYS = ("test/nll", "steps", "latent_dim", "num_params", "exact")


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_same_config_and_seed_give_the_same_metrics(run_cli, tmp_path):
    a = run_cli(tmp_path / "a", *TINY_NSF, "model=nsf", "seed=7")
    b = run_cli(tmp_path / "b", *TINY_NSF, "model=nsf", "seed=7")
    c = run_cli(tmp_path / "c", *TINY_NSF, "model=nsf", "seed=8")
    assert a.code == b.code == c.code == 0
    assert {k: a.metrics[k] for k in RESULT_KEYS} == {k: b.metrics[k] for k in RESULT_KEYS}
    assert a.metrics["test/nll"] != c.metrics["test/nll"]


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    return subprocess.Popen([FUNNELRUN, f"hydra.run.dir={run_dir}", *LONG, *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupt_after_first_checkpoint(run_dir: Path, sig: signal.Signals) -> tuple[int, str]:
    proc = _start(run_dir)
    deadline = time.monotonic() + 120
    # last.ckpt appears by an atomic rename, so once it exists it is complete
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    proc = _start(run_dir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return _metrics(run_dir)


def _resume(run_dir: Path, *extra: str) -> dict:
    proc = _start(run_dir, *extra)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return _metrics(run_dir)


def test_sigterm_then_resume_matches_the_uninterrupted_run(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    code, err = _interrupt_after_first_checkpoint(run_dir, signal.SIGTERM)
    assert code == 143, err[-2000:]
    assert "stopped by SIGTERM at step" in err and "ckpt_path=last" in err
    assert not (run_dir / "metrics.json").exists()
    resumed = _resume(run_dir, "ckpt_path=last")
    assert resumed["steps"] == uninterrupted["steps"] == 400
    assert abs(resumed["test/nll"] - uninterrupted["test/nll"]) <= 1e-6


def test_sigusr1_then_the_same_command_again_continues_the_run(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    code, err = _interrupt_after_first_checkpoint(run_dir, signal.SIGUSR1)
    assert code == 143, err[-2000:]
    assert "stopped by SIGUSR1 at step" in err
    assert not (run_dir / "metrics.json").exists()
    proc = _start(run_dir)  # the very same command: no ckpt_path
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "resuming the interrupted run" in out
    resumed = _metrics(run_dir)
    assert resumed["steps"] == uninterrupted["steps"] == 400
    assert abs(resumed["test/nll"] - uninterrupted["test/nll"]) <= 1e-6


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_matches(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    code, _ = _interrupt_after_first_checkpoint(run_dir, signal.SIGKILL)
    assert code == -signal.SIGKILL
    resumed = _resume(run_dir, "ckpt_path=last")
    assert abs(resumed["test/nll"] - uninterrupted["test/nll"]) <= 1e-6



def test_sigusr2_saves_then_hands_over_to_the_handler_installed_before(tmp_path):
    """A stand-in for submitit's job wrapper: its SIGUSR2 handler (checkpoint-and-requeue) is in
    place before the run starts, and is still called after funnelrun has saved its checkpoint."""
    run_dir, marker = tmp_path / "run", tmp_path / "requeued"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    script = (
        "import signal, sys\nfrom pathlib import Path\nfrom funnelrun.cli import main\n"
        f"def requeue(signum, frame):\n    Path({str(marker)!r}).write_text(str(signum))\n    sys.exit(3)\n"
        "signal.signal(signal.SIGUSR2, requeue)\nsys.argv = ['funnelrun', *sys.argv[1:]]\nmain()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, f"hydra.run.dir={run_dir}", *LONG], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not ckpt.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    first = ckpt.stat().st_mtime_ns
    proc.send_signal(signal.SIGUSR2)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err[-2000:]
    assert marker.read_text() == str(int(signal.SIGUSR2))
    assert ckpt.stat().st_mtime_ns > first  # saved again at the step the signal arrived
