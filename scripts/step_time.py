"""Wall time per training step of a ``funnelrun`` run, with start-up cancelled out.

    .venv/bin/python scripts/step_time.py [--steps 500 2500] [--repeats 3] -- <overrides>
    e.g.  ... -- model=glow model.num_steps=3 data=checkerboard model.hidden_features=50 \\
                 model.num_blocks=1 data.batch_size=64

Runs the command (exactly what a user runs, as a subprocess) for two step counts; the time per step
is the difference of the two runs' ``train_seconds`` (metrics.json) over the difference of steps,
so process start, model build, the first step and the final validation cancel out. The median
of ``--repeats`` such pairs is printed. To compare with another checkout, run the script with
``PYTHONPATH=<that checkout>`` (the subprocesses inherit it and import that ``funnelrun``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent


def train_seconds(run_dir: Path, overrides: list[str], steps: int) -> float:
    """``train_seconds`` of one ``funnelrun`` run of ``steps`` steps (validation only at the end)."""
    cmd = [str(BIN / "funnelrun"), f"hydra.run.dir={run_dir}", *overrides, f"trainer.max_steps={steps}",
           f"trainer.val_check_interval={steps}"]
    proc = subprocess.run(cmd, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())["train_seconds"]


def seconds_per_step(overrides: list[str], short: int, long: int, tmp: Path, tag: str = "") -> float:
    t_short = train_seconds(tmp / f"{tag}{short}", overrides, short)
    t_long = train_seconds(tmp / f"{tag}{long}", overrides, long)
    return (t_long - t_short) / (long - short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs=2, default=[500, 2500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = ["eval.plot=false", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for r in range(args.repeats):
            times.append(seconds_per_step(overrides, *args.steps, Path(tmp), tag=f"r{r}-"))
            print(f"repeat {r}: {1000 * times[-1]:.2f} ms/step", flush=True)
    print(f"\n{' '.join(args.overrides) or '(defaults)'}: median {1000 * statistics.median(times):.2f} ms/step "
          f"over {args.repeats} pairs of {args.steps[0]} and {args.steps[1]} steps "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")


if __name__ == "__main__":
    main()
