"""Wall time per training step: 2-process CPU DDP (``trainer=ddp_cpu``, gloo) against 1 process,
on the same global batch (``data.batch_size`` is the global batch; each DDP rank takes half).

    .venv/bin/python scripts/ddp_step_time.py [--batch 1024] [--steps 100 300]

Each configuration runs twice, for the two step counts; the time per step is the difference of
the two runs' training times divided by the difference of steps, so start-up (process spawn,
gloo rendezvous, the first step) cancels out. Validation runs only at the end.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_time import seconds_per_step  # noqa: E402

MODEL = ["model=f_nsf", "data=four_circles", "eval.plot=false", "data.n_val=1000", "data.n_test=1000"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, nargs=2, default=[100, 300])
    args = parser.parse_args()
    short, long = args.steps
    per_step = {}
    with tempfile.TemporaryDirectory() as tmp:
        for trainer in ("cpu", "ddp_cpu"):
            overrides = [*MODEL, f"trainer={trainer}", f"data.batch_size={args.batch}"]
            per_step[trainer] = seconds_per_step(overrides, short, long, Path(tmp), tag=f"{trainer}-")
            print(f"trainer={trainer}: {1000 * per_step[trainer]:.1f} ms/step", flush=True)
    ratio = per_step["ddp_cpu"] / per_step["cpu"]
    print(f"\nglobal batch {args.batch}, F-NSF (four circles defaults): 1 process "
          f"{1000 * per_step['cpu']:.1f} ms/step, 2 processes (DDP, gloo) {1000 * per_step['ddp_cpu']:.1f} ms/step "
          f"({ratio:.2f}x the single-process step time)")


if __name__ == "__main__":
    main()
