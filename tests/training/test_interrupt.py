"""Ctrl-C as on SIGTERM: the run stops at a step boundary, saves its state, prints the command that
resumes it, exits 130; that command, run as printed, finishes the run. Shown on the two-stage
log-det-masking run stopped in its stage 1, whose resume command names the run directory (not its
stage1/ subdirectory). A stop during the final test (SIGTERM, SIGUSR1) exits 143 without
metrics.json, never 0, and the same command then only tests."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_NSF

BIN = Path(sys.executable).parent
#: a tiny two-stage run on the embedded digits: stage 1 long enough to be stopped in it
LDMASK = ["model=realnvp_ldmask", "data=digits", "model.image.levels=2", "model.image.steps_per_level=1",
          "model.image.hidden_channels=4", "model.image.num_res_blocks=1", "data.batch_size=16",
          "data.eval_batch_size=360", "model.stage1_steps=150", "trainer.max_steps=4", "trainer.val_check_interval=2",
          "eval.plot=false"]


def test_ctrl_c_in_stage_1_of_a_two_stage_run_then_the_printed_command_finishes_it(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [str(BIN / "funnelrun"), f"hydra.run.dir={run_dir}", *LDMASK, "trainer.val_check_interval=5"]
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage1_ckpt = run_dir / "stage1" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not stage1_ckpt.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    assert re.search(r"^funnelrun: stopped by SIGINT at step \d+", err, re.M), err[-3000:]
    assert "funnelrun: error" not in err and "Traceback" not in err and "KeyboardInterrupt" not in err
    (command,) = re.findall(r"^resume with: (.*)$", err, re.M)
    assert command.endswith(f"hydra.run.dir={run_dir} ckpt_path=last") and f"{run_dir}/stage1" not in command
    assert not (run_dir / "stage1" / "metrics.json").exists()

    on_path = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}  # funnelrun as a user's shell finds it
    resumed = subprocess.run(shlex.split(command), env=on_path, cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stage1 = json.loads((run_dir / "stage1" / "metrics.json").read_text())
    assert stage1["steps"] == 150  # stage 1 continued to its end, then stage 2 ran
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 4
    assert (run_dir / "ldmask" / "masks.pt").is_file()


#: a short run whose last step (12) falls between validations (every 8)
TEST_STOP = [*TINY_NSF, "model=nsf", "eval.plot=false", "trainer.max_steps=12", "trainer.val_check_interval=8"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_stop_during_the_final_test_exits_non_zero_and_the_next_launch_tests(run_cli, tmp_path, monkeypatch, sig,
                                                                              one_thread):
    from funnelrun.training.module import DensityEstimator

    whole = run_cli(tmp_path / "whole", *TEST_STOP)
    assert whole.code == 0, whole.err[-2000:]
    real = DensityEstimator.test_step
    with monkeypatch.context() as mp:
        mp.setattr(DensityEstimator, "test_step",
                   lambda self, batch, i: (os.kill(os.getpid(), sig), real(self, batch, i))[1])
        stopped = run_cli(tmp_path / "run", *TEST_STOP)
    assert stopped.code == 143, stopped.err[-2000:]
    assert f"funnelrun: stopped by {sig.name} at step 12" in stopped.err and "ckpt_path=last" in stopped.err
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
    again = run_cli(tmp_path / "run", *TEST_STOP)  # the same command: auto_resume, nothing left to train, tests
    assert again.code == 0, again.err[-2000:]
    assert again.metrics["steps"] == 12 and again.metrics["test/nll"] == whole.metrics["test/nll"]
    assert again.metrics["val/nll"] == whole.metrics["val/nll"]
