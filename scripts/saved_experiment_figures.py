"""The saved-experiment figures of issue 18, at a CPU budget: two tables from ``scripts/compare_runs.py``.

    nice .venv/bin/python scripts/saved_experiment_figures.py --steps 5000 --digits-steps 1000

1. VFlow §5's checkerboard pair, ``experiment=vflow/checkerboard_glow`` and
   ``experiment=vflow/checkerboard_vflow`` as saved (3 steps, nets of width 50, batch 64, a
   1,000-point test set, S = 100 importance samples for VFlow), over ``--seeds``, with only
   ``trainer.max_steps`` cut to ``--steps`` (the paper: 100,000) and no density figure; then
   ``funnelrun-report --paper`` puts them beside the paper's -3.67 ± 0.03 (Glow) and -3.51 ± 0.01
   (VFlow). compare_runs' table adds the true test log-likelihood of the same 1,000 points.
2. ``experiment=drf/cifar10_realnvp`` and ``experiment=drf/cifar10_flow_vae`` (Das et al. 2019) on the
   embedded ``digits`` (1 x 8 x 8, 4-bit), cut to a small net and ``--digits-steps`` steps: RealNVP's
   exact test log-likelihood beside the flow-VAE's importance-weighted estimate (``--digits-is-samples``)
   and its bound (11).

Runs go under ``--out`` (a finished run there is tabled, not run again); ``--jobs 2 --threads 1``
shares two cores. Prints each table and the wall time.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the drf/ files cut for digits: two levels, 16 channels, one residual block, one coupling per mask
DIGITS = ["data=digits", "model.image.levels=2", "model.image.hidden_channels=16", "model.image.num_res_blocks=1",
          "model.image.steps_per_level=1", "eval.plot=false", "eval.temperatures=[1.0]", "eval.num_samples=64"]


def compare(out: Path, runs: list[str], common: list[str], seeds: list[int], jobs: int, threads: int) -> None:
    command = [sys.executable, str(HERE / "compare_runs.py"), "--dir", str(out), "--seeds", *map(str, seeds),
               "--jobs", str(jobs), "--threads", str(threads)]
    for run in runs:
        command += ["--run", run]
    subprocess.run([*command, "--", *common], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="checkerboard training steps (paper: 100,000)")
    parser.add_argument("--digits-steps", type=int, default=1000, help="digits training steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--digits-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--digits-is-samples", type=int, default=100, help="the flow-VAE's importance samples")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="outputs/saved_experiment_figures")
    parser.add_argument("--skip", choices=["checkerboard", "digits"], action="append", default=[])
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    if "checkerboard" not in args.skip:
        board = out / f"vflow_checkerboard_{args.steps}"
        compare(board, ["Glow 3-step|experiment=vflow/checkerboard_glow",
                        "VFlow 3-step D=10|experiment=vflow/checkerboard_vflow"],
                [f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={max(args.steps // 5, 1)}",
                 "eval.plot=false"], args.seeds, args.jobs, args.threads)
        subprocess.run([str(Path(sys.executable).with_name("funnelrun-report")), str(board), "--paper"], check=True)
        print(f"checkerboard done after {time.perf_counter() - start:.0f} s wall", flush=True)
    if "digits" not in args.skip:
        digits = out / f"drf_digits_{args.digits_steps}"
        compare(digits, ["RealNVP|experiment=drf/cifar10_realnvp", "flow-VAE (D/4)|experiment=drf/cifar10_flow_vae"],
                [*DIGITS, f"trainer.max_steps={args.digits_steps}",
                 f"trainer.val_check_interval={max(args.digits_steps // 4, 1)}", f"eval.is_samples={args.digits_is_samples}",
                 "model.latent_dim=null"], args.digits_seeds, args.jobs, args.threads)
    print(f"wall time {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
