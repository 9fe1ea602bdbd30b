"""F-NSF step time over NSF step time (the funnel's overhead), this checkout against a baseline one.

    scripts/make_baseline.sh outputs/baseline <rev>
    .venv/bin/python scripts/funnel_overhead.py outputs/baseline miniboone|power coupling|autoregressive ROUNDS STEPS

Builds the benchmark architectures of scripts/bench_throughput.py (10 steps; the F-NSF drops D // 3
after 5 steps, conditional flow) from this checkout and from ``funnelrun_base`` under the baseline
directory, and times training steps (forward, backward, fused Adam) on one thread, interleaved: each
round runs STEPS steps of each of the four models in turn; medians over ROUNDS rounds.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, sys.argv.pop(1))
import torch  # noqa: E402

torch.set_num_threads(1)
from funnelrun_base.models.f_nsf import build_f_nsf as base_f_nsf  # noqa: E402
from funnelrun_base.models.nsf import build_nsf as base_nsf  # noqa: E402

from funnelrun.models.f_nsf import build_f_nsf  # noqa: E402
from funnelrun.models.nsf import build_nsf  # noqa: E402

SIZES = {"miniboone": (43, 32, 1, 4, 128), "power": (6, 256, 2, 8, 512)}
config, kind, rounds, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
D, hidden, blocks, bins, batch = SIZES[config]
common = dict(num_steps=10, transform=kind, hidden_features=hidden, num_blocks=blocks, num_bins=bins,
              tail_bound=3.0, linear="lu")
fun = dict(dim_reduction=max(1, D // 3), funnel_level=5, conditional="flow")
models = {}
builders = [("NSF", build_nsf, {}), ("F-NSF", build_f_nsf, fun), ("NSF@base", base_nsf, {}),
            ("F-NSF@base", base_f_nsf, fun)]
for name, builder, extra in builders:
    torch.manual_seed(0)
    models[name] = builder((D,), **common, **extra)
x = torch.randn(batch, D, generator=torch.Generator().manual_seed(1))
opts = {k: torch.optim.Adam(m.parameters(), lr=1e-4, fused=True) for k, m in models.items()}


def step(k):
    opts[k].zero_grad(set_to_none=True)
    (-models[k].log_prob(x).mean()).backward()
    opts[k].step()


for k in models:
    for _ in range(3):
        step(k)
times = {k: [] for k in models}
for _ in range(rounds):
    for k in models:
        t = time.perf_counter()
        for _ in range(n):
            step(k)
        times[k].append((time.perf_counter() - t) / n)
med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
print(f"{config} {kind}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items()))
print(f"  F-NSF/NSF now {med['F-NSF'] / med['NSF']:.3f}, baseline {med['F-NSF@base'] / med['NSF@base']:.3f}; "
      f"load {os.getloadavg()[0]:.2f}")
