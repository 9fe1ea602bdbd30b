"""`trainer=ddp_cpu`: two gloo processes train on the same global batches as one process, score the
test split exactly once (no sampler padding), and report the single-process test NLL.

Run as subprocesses: Lightning starts rank 1 by re-running the command line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TINY_NSF

FUNNELRUN = str(Path(sys.executable).with_name("funnelrun"))
#: an odd test-split size: a padding sampler would score one example twice over 2 ranks
RUN = [*TINY_NSF, "model=nsf", "data.n_test=301", "trainer.max_steps=8", "trainer.val_check_interval=4",
       "eval.plot=false"]
#: float sums in another order: equal up to rounding accumulated over 8 Adam steps
TOLERANCE = 1e-4


def _run(run_dir: Path, *extra: str) -> dict:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([FUNNELRUN, f"hydra.run.dir={run_dir}", *RUN, *extra], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


def test_two_process_ddp_matches_one_process(tmp_path):
    single = _run(tmp_path / "single")
    ddp = _run(tmp_path / "ddp", "trainer=ddp_cpu")
    assert single["test/examples"] == ddp["test/examples"] == 301
    assert ddp["steps"] == single["steps"] == 8
    assert abs(ddp["test/nll"] - single["test/nll"]) < TOLERANCE


def test_global_batch_must_split_over_ranks(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([FUNNELRUN, f"hydra.run.dir={tmp_path / 'run'}", *RUN, "trainer=ddp_cpu",
                           "data.batch_size=63"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "divisible by the 2 processes" in proc.stderr
