"""Overhead of the run machinery: the wall time of a whole ``funnelrun`` process that trains 0
steps (start Python, compose the config, build data and model, test on a small split, write the
outputs), measured from outside the process.

    .venv/bin/python scripts/run_overhead.py [--repeats 3]

Prints each repeat's wall time, the median, and the import time of the package alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ZERO_STEPS = ["model=f_nsf", "data=four_circles", "trainer.max_steps=0", "data.n_test=1000", "eval.plot=false"]


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "WANDB_MODE": "offline"}
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            run_dir = Path(tmp) / f"run{i}"
            walls.append(_timed([str(BIN / "funnelrun"), f"hydra.run.dir={run_dir}", *ZERO_STEPS], env))
            metrics = json.loads((run_dir / "metrics.json").read_text())
            assert metrics["steps"] == 0 and metrics["test/examples"] == 1000
            print(f"run {i}: {walls[-1]:.2f} s (0 steps, test on {metrics['test/examples']} examples)", flush=True)
        imports = _timed([sys.executable, "-c", "import funnelrun.pipelines.train"], env)
    print(f"\nfunnelrun {' '.join(ZERO_STEPS)}")
    print(f"median wall time over {args.repeats} runs: {statistics.median(walls):.2f} s "
          f"(min {min(walls):.2f}, max {max(walls):.2f}); importing funnelrun.pipelines.train alone: {imports:.2f} s")


if __name__ == "__main__":
    main()
