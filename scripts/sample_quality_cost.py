"""Time and peak memory of ``funnelrun-eval eval.sample_quality=true`` with the stand-in network for
50,000 CIFAR-shaped samples (3x32x32, 5 bits) of a small model: what the funnels paper's Table 3
protocol costs here, beside the network (the Inception weights are not on this machine, so the
stand-in network, a fixed random one, takes its place: its numbers are no FID or IS).

    nice .venv/bin/python scripts/sample_quality_cost.py [--samples 50000] [--temperatures 1.0] \\
        [--batch-size 500] [--keep DIR] [-- <model overrides>]

It writes a CIFAR-10-shaped set of random images in the real format (``cifar-10-batches-py``, 50,000
training and 10,000 test images: the reference is the whole training split, as in the paper),
trains the small model for 2 steps (its numbers do not matter, its sampling cost does), then runs
``funnelrun-eval ckpt_path=<run> eval.sample_quality=true eval.quality_network=standin`` as a
subprocess, exactly as a user would, and reports its wall time, its peak resident memory (the
child's ``ru_maxrss``), the time of each phase (the tool's own progress lines: the reference's
features, then each temperature's sampling and scoring) and the machine's load (``uptime``).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
#: a small multi-scale NSF on CIFAR-10 5-bit: one level of one step, 8 hidden channels
SMALL_MODEL = ["model=nsf", "model.image.levels=1", "model.image.steps_per_level=1", "model.image.hidden_channels=8",
               "model.image.num_res_blocks=1"]


def write_cifar(root: Path, seed: int = 0) -> Path:
    """Random uint8 images in CIFAR-10's pickle batches: 5 x 10,000 training, 10,000 test."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8), b"labels": [0] * 10_000}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return root


def run(cmd: list[str], log: Path) -> tuple[str, float, int]:
    """(stdout, wall seconds, peak RSS in bytes of this process alone: its ``ru_maxrss``) of ``cmd``."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{log.with_suffix('.err').read_text()[-3000:]}")
    return log.with_suffix(".out").read_text(), wall, usage.ru_maxrss * 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50_000, help="samples per temperature (the paper's 50,000)")
    parser.add_argument("--temperatures", default="1.0", help="comma-separated, e.g. 0.5,0.75,1.0")
    parser.add_argument("--batch-size", type=int, default=500, help="eval.quality_batch_size")
    parser.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it")
    parser.add_argument("model", nargs="*", help="model overrides (default: a small NSF)")
    args = parser.parse_args()
    model = args.model or SMALL_MODEL
    work = args.keep or Path(tempfile.mkdtemp(prefix="sample_quality_cost_"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    if not (data / "cifar-10-batches-py").is_dir():
        write_cifar(data)
    run_dir = work / "run"
    if not (run_dir / "metrics.json").is_file():
        run([str(BIN / "funnelrun"), f"hydra.run.dir={run_dir}", "data=cifar10_5bit", f"data.data_dir={data}", *model,
             "data.batch_size=16", "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=1", "eval.plot=false"], work / "train")
    cmd = [str(BIN / "funnelrun-eval"), f"ckpt_path={run_dir}", f"data.data_dir={data}", "eval.sample_quality=true",
           "eval.quality_network=standin", f"eval.quality_samples={args.samples}",
           f"eval.quality_batch_size={args.batch_size}", f"eval.temperatures=[{args.temperatures}]", "log_every_s=60"]
    load_before = os.getloadavg()
    stdout, wall, peak = run(cmd, work / "eval")
    load_after = os.getloadavg()
    phases = {m.group(1): m.group(2) for m in re.finditer(r"^sample quality: (.+?): \d+ batches in (\S+)$",
                                                          stdout, re.MULTILINE)}
    (eval_dir,) = sorted((run_dir / "eval").iterdir())[-1:]
    metrics = json.loads((eval_dir / "eval_metrics.json").read_text())
    report = {
        "command": " ".join(cmd),
        "model": model,
        "samples_per_temperature": args.samples,
        "temperatures": args.temperatures,
        "reference_examples": metrics["sample/reference_examples"],
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "phases": phases,
        "standin_fid": metrics["sample/standin_fid"],
        "load_before": load_before,
        "load_after": load_after,
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
