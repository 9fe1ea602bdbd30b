"""Cost per training step of the non-finite-gradient check, before and after
``funnelrun.training.nonfinite`` (single-threaded, interleaved rounds, medians).

    .venv/bin/python scripts/bench_nonfinite_check.py [--rounds 7]

"per tensor" is the check ``DensityEstimator.on_before_optimizer_step`` did before: ``isfinite`` and
``all`` on every gradient, a stack and a ``bool`` (two operations per parameter tensor, and a host
sync on a GPU). "flags" is ``NonFiniteFlags.flag`` (one fused check over every gradient, the flag
handed to fused Adam) plus reading the arrived flag, as the module now does. Both see the gradients
of the benchmark's MINIBOONE- and POWER-sized coupling NSFs.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from funnelrun.models.nsf import build_nsf
from funnelrun.training.nonfinite import NonFiniteFlags

SIZES = {"MINIBOONE": (43, 32, 1, 4, 128), "POWER": (6, 256, 2, 8, 512)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--reps", type=int, default=50)
    args = p.parse_args()
    torch.set_num_threads(1)
    for name, (features, hidden, blocks, bins, batch) in SIZES.items():
        torch.manual_seed(0)
        model = build_nsf((features,), num_steps=10, transform="coupling", hidden_features=hidden,
                          num_blocks=blocks, num_bins=bins, tail_bound=3.0)
        optimizer = torch.optim.Adam(model.parameters(), fused=True)
        (-model.log_prob(torch.randn(batch, features)).mean()).backward()
        grads = [q.grad for q in model.parameters()]
        flags = NonFiniteFlags()

        def per_tensor() -> bool:
            return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

        def fused() -> list:
            flags.flag(optimizer, grads, 0)
            return list(flags.arrived())

        times: dict[str, list[float]] = {"per tensor": [], "flags": []}
        for _ in range(args.rounds):
            for label, fn in (("per tensor", per_tensor), ("flags", fused)):
                t = time.perf_counter()
                for _ in range(args.reps):
                    fn()
                times[label].append((time.perf_counter() - t) / args.reps * 1e6)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name}: {len(grads)} gradient tensors; per tensor {med['per tensor']:.0f} us, "
              f"flags {med['flags']:.0f} us ({med['per tensor'] / med['flags']:.1f}x)")


if __name__ == "__main__":
    main()
