"""Wall time per training step: 2-process CPU DDP (``trainer=ddp_cpu``, gloo) against 1 process,
on the same global batch (``data.batch_size`` is the global batch; each DDP rank takes half).

    .venv/bin/python scripts/ddp_step_time.py [--batch 1024] [--steps 100 300]

Each configuration runs twice, for the two step counts; the time per step is the difference of
the two runs' training times divided by the difference of steps, so start-up (process spawn,
gloo rendezvous, the first step) cancels out. Validation runs only at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
MODEL = ["model=f_nsf", "data=four_circles", "eval.plot=false", "data.n_val=1000", "data.n_test=1000"]


def _train_seconds(run_dir: Path, trainer: str, steps: int, batch: int) -> float:
    cmd = [str(BIN / "funnelrun"), f"hydra.run.dir={run_dir}", *MODEL, f"trainer={trainer}",
           f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}", f"data.batch_size={batch}"]
    proc = subprocess.run(cmd, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, nargs=2, default=[100, 300])
    args = parser.parse_args()
    short, long = args.steps
    per_step = {}
    with tempfile.TemporaryDirectory() as tmp:
        for trainer in ("cpu", "ddp_cpu"):
            t_short = _train_seconds(Path(tmp) / f"{trainer}-{short}", trainer, short, args.batch)
            t_long = _train_seconds(Path(tmp) / f"{trainer}-{long}", trainer, long, args.batch)
            per_step[trainer] = (t_long - t_short) / (long - short)
            print(f"trainer={trainer}: {short} steps {t_short:.1f} s, {long} steps {t_long:.1f} s -> "
                  f"{1000 * per_step[trainer]:.1f} ms/step", flush=True)
    ratio = per_step["ddp_cpu"] / per_step["cpu"]
    print(f"\nglobal batch {args.batch}, F-NSF (four circles defaults): 1 process "
          f"{1000 * per_step['cpu']:.1f} ms/step, 2 processes (DDP, gloo) {1000 * per_step['ddp_cpu']:.1f} ms/step "
          f"({ratio:.2f}x the single-process step time)")


if __name__ == "__main__":
    main()
