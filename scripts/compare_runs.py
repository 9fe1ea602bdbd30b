"""Run labelled `funnelrun` configurations over seeds and table their test log-likelihoods.

    .venv/bin/python scripts/compare_runs.py --seeds 0 1 2 \\
        --run "Glow 3-step|model=glow data=checkerboard model.num_steps=3" \\
        --run "VFlow 3-step D=10|model=vflow data=checkerboard model.augment_dim=8 model.num_steps=2" \\
        -- trainer.max_steps=3000

Each run is a subprocess (exactly what a user runs), in its own directory under --out-root; ``--jobs``
runs that many at once (with ``--threads`` intra-op threads each, e.g. ``--jobs 2 --threads 1`` on two
cores). The
table gives mean ± 2 standard deviations over seeds of the test log-likelihood, says whether each
number is exact or an importance-weighted estimate of a bound model, and (for plane sets with a
known density) the true mean test log-likelihood of the same test split.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

from funnelrun.data.plane import TRUE_LOG_DENSITIES, PlaneDataModule


def true_test_log_likelihood(data_name: str, n_test: int = 10_000, seed: int = 1234) -> float | None:
    if data_name not in TRUE_LOG_DENSITIES:
        return None
    test = PlaneDataModule(data_name, n_test=n_test, seed=seed).test_data.double()
    return TRUE_LOG_DENSITIES[data_name](test).mean().item()


def run_data(run_dir: Path) -> dict:
    """The data settings a finished run used (its saved config: what an experiment= file set)."""
    config = OmegaConf.load(run_dir / "config.yaml")
    return dict(OmegaConf.to_container(config.data, resolve=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="'label|override override ...'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out-root", default="outputs/compare", help="runs go in <out-root>/<time>/")
    parser.add_argument("--dir", default=None,
                        help="runs go in exactly this directory instead; a run there that has finished "
                             "(metrics.json) is tabled, not run again: add seeds to a table later")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each run")
    parser.add_argument("common", nargs="*", help="overrides added to every run")
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("funnelrun"))
    root = Path(args.dir) if args.dir else Path(args.out_root) / time.strftime("%Y%m%d-%H%M%S")
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    specs = [spec.partition("|")[::2] for spec in args.run]

    def run_one(label: str, overrides: str, seed: int) -> dict:
        run_dir = root / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-seed{seed}"
        if (run_dir / "metrics.json").exists():
            metrics = json.loads((run_dir / "metrics.json").read_text())
            print(f"{label} seed {seed}: finished earlier in {run_dir}, test log-lik {-metrics['test/nll']:.4f}",
                  flush=True)
            return dict(metrics, data=run_data(run_dir))
        start = time.perf_counter()
        subprocess.run([exe, *overrides.split(), *args.common, f"seed={seed}", f"hydra.run.dir={run_dir}"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics["wall"] = time.perf_counter() - start
        metrics["data"] = run_data(run_dir)
        print(f"{label} seed {seed}: test log-lik {-metrics['test/nll']:.4f} ({metrics['wall']:.0f} s)", flush=True)
        return metrics

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        # seed-major order, so with several jobs every configuration is under way from the start
        futures = {(label, seed): pool.submit(run_one, label, overrides, seed)
                   for seed in args.seeds for label, overrides in specs}
    rows = []
    for label, _ in specs:
        results = [futures[label, seed].result() for seed in args.seeds]
        rows.append((label, results[0]["data"], results))

    print(f"\nseeds {args.seeds}; common overrides: {' '.join(args.common) or '(none)'}; runs in {root}")
    print("| model | data | test log-lik (nats), mean ± 2 sd | per seed | kind | one-sample bound | true | latent dim | params "
          "| steps | training s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, data, results in rows:
        data_name = data["name"]
        ll = [-m["test/nll"] for m in results]
        spread = 2 * statistics.stdev(ll) if len(ll) > 1 else 0.0
        first = results[0]
        kind = "exact" if first["exact"] else f"IS estimate, S={first['is_samples']}"
        bound = "" if first["exact"] else f"{statistics.mean(-m['test/nll_elbo'] for m in results):.4f}"
        plane = "n_test" in data and "seed" in data
        truth = true_test_log_likelihood(data_name, data["n_test"], data["seed"]) if plane else None
        per_seed = ", ".join(f"{value:.4f}" for value in ll)
        print(f"| {label} | {data_name} | {statistics.mean(ll):.4f} ± {spread:.4f} | {per_seed} | {kind} | {bound} | "
              f"{'' if truth is None else f'{truth:.4f}'} | {first['latent_dim']} | {first['num_params']:,} | "
              f"{first['steps']} | {statistics.mean(m['train_seconds'] for m in results):.0f} |")


if __name__ == "__main__":
    main()
