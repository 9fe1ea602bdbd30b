"""F-NSF training-step time over NSF training-step time (the funnel's overhead; funnels paper Sec. 4:
"an increase of up to 20% in time per training step over the baseline equivalents").

    .venv/bin/python scripts/funnel_overhead.py [--recipes table1 bench] [--sizes miniboone power]
        [--kinds coupling autoregressive] [--rounds 7] [--seconds 1.0] [--compile] [--baseline DIR]

Recipes:

- ``table1``: the shipped ``experiment=table1/<size>_nsf`` and ``..._f_nsf`` configs (Table 5's widths,
  dropout, unconditional transforms, the paper's dimension reduction and funnel level), built by
  ``funnelrun.build`` exactly as ``funnelrun`` builds them, the data's preprocessing layers included (on
  a small random file in the MAF format, written to a temporary directory: only the shapes matter);
  ``autoregressive`` adds ``model.transform=autoregressive``.
- ``bench``: the architectures of ``scripts/bench_throughput.py`` (no dropout, no unconditional
  transform; the F-NSF drops D // 3 after 5 of 10 steps).

Each model trains in train mode (dropout on) on one thread with fused Adam, as the trainer does;
rounds are *interleaved* (each round times ``--seconds`` of steps of every model in turn), and the
figure is the median over rounds. ``--compile`` adds the same models with ``torch.compile`` of their
log-density (what ``compile=true``, and ``compile=auto`` on a long run, trains with); compile time is
printed separately and not in the step time. ``--baseline DIR`` adds the eager models of an older
checkout (``scripts/make_baseline.sh DIR <rev>``, package ``funnelrun_base``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_throughput import SIZES, calibrate, timed  # noqa: E402

import funnelrun  # noqa: E402
from funnelrun.models.f_nsf import build_f_nsf  # noqa: E402
from funnelrun.models.nsf import build_nsf  # noqa: E402

#: columns of the raw MAF files (POWER's data.npy has 8, two of which the loader drops)
RAW_COLUMNS = {"miniboone": 43, "power": 8}


def write_maf_files(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name, columns in RAW_COLUMNS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        np.save(root / name / "data.npy", rng.standard_normal((4000, columns)))


def table1_model(size: str, model: str, kind: str, data_dir: Path) -> torch.nn.Module:
    overrides = [f"experiment=table1/{size}_{model}", f"data.data_dir={data_dir}"]
    if kind != "coupling":
        overrides.append(f"model.transform={kind}")
    flow, _ = funnelrun.build(funnelrun.compose(overrides))
    return flow


def bench_model(size: str, model: str, kind: str, package: str = "funnelrun") -> torch.nn.Module:
    s = SIZES[size]
    common = dict(num_steps=s.steps, transform=kind, hidden_features=s.hidden, num_blocks=s.blocks,
                  num_bins=s.bins, tail_bound=s.tail_bound, linear="lu")
    if package == "funnelrun":
        nsf, f_nsf = build_nsf, build_f_nsf
    else:
        nsf = __import__(f"{package}.models.nsf", fromlist=["build_nsf"]).build_nsf
        f_nsf = __import__(f"{package}.models.f_nsf", fromlist=["build_f_nsf"]).build_f_nsf
    torch.manual_seed(0)
    if model == "nsf":
        return nsf((s.features,), **common)
    return f_nsf((s.features,), **common, dim_reduction=max(1, s.features // 3), funnel_level=s.steps // 2,
                 conditional="flow")


class Stepper:
    """One model's training step: loss = -mean log p(x), backward, fused Adam."""

    def __init__(self, flow: torch.nn.Module, batch: int, compile: bool):
        self.flow = flow.train()
        self.x = torch.randn(batch, flow.data_dim, generator=torch.Generator().manual_seed(1))
        self.opt = torch.optim.Adam(flow.parameters(), lr=1e-4, fused=True)
        self.log_prob: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(flow.log_prob) if compile else flow.log_prob)
        start = time.perf_counter()
        self()
        self.first_step_seconds = time.perf_counter() - start
        for _ in range(3):
            self()

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        (-self.log_prob(self.x).mean()).backward()
        self.opt.step()


def measure(steppers: dict[str, Stepper], rounds: int, seconds: float) -> dict[str, float]:
    """Median ms per step over ``rounds`` interleaved rounds of about ``seconds`` per model
    (at least 2 steps a block)."""
    counts = {name: max(2, calibrate(step, seconds)) for name, step in steppers.items()}
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            times[name].append(timed(step, counts[name]))
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["table1", "bench"], choices=["table1", "bench"])
    p.add_argument("--sizes", nargs="+", default=["miniboone", "power"], choices=sorted(RAW_COLUMNS))
    p.add_argument("--kinds", nargs="+", default=["coupling", "autoregressive"], choices=["coupling", "autoregressive"])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.0, help="length of one model's timed block")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd log-densities")
    p.add_argument("--baseline", metavar="DIR", help="also time the eager models of funnelrun_base under DIR")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.baseline:
        sys.path.insert(0, args.baseline)
    print(f"torch {torch.__version__}, 1 thread, {args.rounds} interleaved rounds of {args.seconds} s per model")
    with tempfile.TemporaryDirectory() as tmp:
        write_maf_files(Path(tmp))
        for recipe in args.recipes:
            for size in args.sizes:
                for kind in args.kinds:
                    run_case(recipe, size, kind, Path(tmp), args)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def run_case(recipe: str, size: str, kind: str, data_dir: Path, args: Any) -> None:
    batch = SIZES[size].batch
    builders: dict[str, Callable[[], torch.nn.Module]] = {}
    for model in ("nsf", "f_nsf"):
        if recipe == "table1":
            builders[model] = lambda m=model: table1_model(size, m, kind, data_dir)
        else:
            builders[model] = lambda m=model: bench_model(size, m, kind)
            if args.baseline:
                builders[f"{model}@base"] = lambda m=model: bench_model(size, m, kind, "funnelrun_base")
    variants = [False, True] if args.compile else [False]
    steppers = {}
    for compiled in variants:
        for name, build in builders.items():
            if compiled and name.endswith("@base"):
                continue
            key = f"{name}{' compiled' if compiled else ''}"
            steppers[key] = Stepper(build(), batch, compiled)
    med = measure(steppers, args.rounds, args.seconds)
    params = {k: sum(q.numel() for q in s.flow.parameters()) for k, s in steppers.items()}
    print(f"\n{recipe} {size} {kind} (batch {batch}):")
    for k, v in med.items():
        print(f"  {k:22s} {params[k]:>10,} params  {v:8.2f} ms/step   (first step {steppers[k].first_step_seconds:.1f} s)")
    for suffix in ("", " compiled", "@base"):
        if f"nsf{suffix}" in med and f"f_nsf{suffix}" in med:
            print(f"  F-NSF/NSF{suffix or ' eager'}: {med[f'f_nsf{suffix}'] / med[f'nsf{suffix}']:.3f}")

if __name__ == "__main__":
    main()
