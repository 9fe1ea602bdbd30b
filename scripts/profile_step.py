"""Profile one training step (forward, backward, fused Adam) of a benchmark model, single-threaded.

    .venv/bin/python scripts/profile_step.py [--config miniboone|power] [--kind coupling|autoregressive]
                                             [--model nsf|f_nsf|f_mlp] [--steps 20] [--shapes] [--rows 30]

The models are those of ``scripts/bench_throughput.py`` (same sizes; the F-MLP at the NSF's
parameter count). Prints torch.profiler's operator table sorted by self CPU time (``--shapes``:
grouped by input shape, which is how the F-MLP's dominant cost was found: a zero-fill of a
(6, K, batch, D) tensor in the spline's gather backward, see ``splines._gather_bins``), and the
per-layer forward + backward time of the model's top-level layers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_throughput import SIZES, _f_mlp_bench  # noqa: E402

from funnelrun.models.f_nsf import build_f_nsf  # noqa: E402
from funnelrun.models.nsf import build_nsf  # noqa: E402


def build(config: str, kind: str, model: str) -> torch.nn.Module:
    size = SIZES[config]
    common = dict(num_steps=size.steps, transform=kind, hidden_features=size.hidden, num_blocks=size.blocks,
                  num_bins=size.bins, tail_bound=size.tail_bound, dropout=0.0, linear="lu")
    dropped = max(1, size.features // 3)
    torch.manual_seed(0)
    nsf = build_nsf((size.features,), **common)
    if model == "nsf":
        return nsf
    if model == "f_nsf":
        torch.manual_seed(0)
        return build_f_nsf((size.features,), **common, dim_reduction=dropped, funnel_level=size.steps // 2,
                           conditional="flow")
    return _f_mlp_bench(size, nsf, dropped)[0].module


def layer_times(flow: torch.nn.Module, x: torch.Tensor, reps: int = 30) -> None:
    """Forward + backward time of each top-level layer on the activations it sees."""
    inputs, h = [], x
    with torch.no_grad():
        for layer in flow.transform.transforms:
            inputs.append(h)
            h, _ = layer(h)
    totals: dict[str, float] = {}
    for layer, inp in zip(flow.transform.transforms, inputs):
        def run() -> None:
            z, c = layer(inp)
            if z.requires_grad or c.requires_grad:
                (z.sum() + c.sum()).backward()
        for _ in range(3):
            run()
        t = time.perf_counter()
        for _ in range(reps):
            run()
        ms = (time.perf_counter() - t) / reps * 1e3
        totals[type(layer).__name__] = totals.get(type(layer).__name__, 0.0) + ms
    print("per layer type, forward + backward ms: "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="miniboone", choices=sorted(SIZES))
    p.add_argument("--kind", default="coupling", choices=["coupling", "autoregressive"])
    p.add_argument("--model", default="f_mlp", choices=["nsf", "f_nsf", "f_mlp"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rows", type=int, default=30)
    p.add_argument("--shapes", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    size = SIZES[args.config]
    flow = build(args.config, args.kind, args.model)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-4, fused=True)
    x = torch.randn(size.batch, size.features, generator=torch.Generator().manual_seed(1))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (-flow.log_prob(x).mean()).backward()
        opt.step()

    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    print(f"{args.model} ({args.config}, {args.kind}): {sum(q.numel() for q in flow.parameters()):,} parameters, "
          f"{(time.perf_counter() - t) / args.steps * 1e3:.1f} ms/step unprofiled")
    layer_times(flow, x)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        for _ in range(args.steps):
            step()
    print(prof.key_averages(group_by_input_shape=args.shapes).table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_shapes_column_width=60))


if __name__ == "__main__":
    main()
