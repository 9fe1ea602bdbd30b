"""Issue 7 figure: interrupted-and-resumed runs end where uninterrupted runs end.

For each data set and model family, run `funnelrun` three ways: uninterrupted; stopped by
SIGTERM right after its first checkpoint, then resumed with `ckpt_path=last`; and (with --sigkill)
killed by SIGKILL after a checkpoint, then resumed. Prints the largest |test NLL difference|.

    .venv/bin/python scripts/resume_equality.py [--models nsf f_nsf] [--steps 300] [--sigkill]
        [--data four_circles ... digits cifar10_5bit]

Plane sets by default; image sets (:data:`IMAGES`) train a small multi-scale model: ``digits`` is
embedded, ``cifar10_5bit`` is a synthetic set in the CIFAR-10 format (funnelrun/data/synthetic.py)
read through the prepared-data cache, its training noise drawn after the batch transfer.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLANES = ["four_circles", "checkerboard", "two_moons", "eight_gaussians", "two_spirals"]
SIZE = ["model.hidden_features=32", "model.num_blocks=1", "model.num_bins=8", "data.n_train=4096",
        "data.n_val=1024", "data.n_test=2048", "eval.plot=false"]
IMAGE_SIZE = ["model.image.levels=1", "model.image.steps_per_level=2", "model.image.hidden_channels=8",
              "model.image.num_res_blocks=1", "model.image.conditional_hidden_features=16", "data.batch_size=64",
              "data.eval_batch_size=256", "eval.plot=false"]
#: image data options -> extra overrides (``{root}``: this run's temporary directory)
IMAGES = {
    "digits": ["data.val_size=200"],
    "cifar10_5bit": ["data.data_dir={root}/cifar", "data.val_size=500"],
}


def size_overrides(data: str, model: str, root: str) -> list[str]:
    if data not in IMAGES:
        return SIZE
    funnel = ["model.latent_dim=null"] if model.startswith("f_") else []
    return [*IMAGE_SIZE, *funnel, *(o.format(root=root) for o in IMAGES[data])]


def funnelrun(run_dir: Path, args: list[str]) -> subprocess.Popen:
    exe = str(Path(sys.executable).with_name("funnelrun"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([exe, f"hydra.run.dir={run_dir}", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(err[-2000:])


def interrupted_then_resumed(run_dir: Path, args: list[str], sig: signal.Signals) -> float:
    proc = funnelrun(run_dir, args)
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        if proc.poll() is not None:
            raise RuntimeError(f"finished before it could be interrupted: {proc.communicate()[1][-500:]}")
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.communicate()
    finish(funnelrun(run_dir, [*args, "ckpt_path=last"]))
    return json.loads((run_dir / "metrics.json").read_text())["test/nll"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["nsf", "f_nsf"])
    parser.add_argument("--data", nargs="+", default=PLANES)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sigkill", action="store_true")
    args = parser.parse_args()
    signals = [signal.SIGTERM] + ([signal.SIGKILL] if args.sigkill else [])
    worst = 0.0
    print("| data | model | uninterrupted test NLL | signal | resumed test NLL | abs diff |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        if "cifar10_5bit" in args.data:
            from funnelrun.data.synthetic import write_cifar10

            write_cifar10(Path(root) / "cifar", 5000, 1000)
        for data in args.data:
            for model in args.models:
                run_args = [f"model={model}", f"data={data}", *size_overrides(data, model, root),
                            f"trainer.max_steps={args.steps}",
                            f"trainer.val_check_interval={max(args.steps // 10, 1)}"]
                whole = Path(root) / f"{data}-{model}-whole"
                finish(funnelrun(whole, run_args))
                reference = json.loads((whole / "metrics.json").read_text())["test/nll"]
                for sig in signals:
                    resumed = interrupted_then_resumed(Path(root) / f"{data}-{model}-{sig.name}", run_args, sig)
                    diff = abs(resumed - reference)
                    worst = max(worst, diff)
                    print(f"| {data} | {model} | {reference:.8f} | {sig.name} | {resumed:.8f} | {diff:.2e} |",
                          flush=True)
    print(f"\nlargest |difference| over {len(args.data) * len(args.models) * len(signals)} pairs: {worst:.2e}")


if __name__ == "__main__":
    main()
