"""Throughput of funnelrun's NSF / F-NSF against nflows and zuko at identical architectures.

    .venv/bin/python scripts/bench_throughput.py [--configs power miniboone] [--kinds coupling autoregressive]
                                                 [--rounds 5] [--seconds 0.4] [--compile] [--quick]

Needs the ``bench`` extra (``pip install -c constraints.txt -e '.[bench]'``: nflows, zuko); a peer
that is not installed is skipped with a note. Everything is measured in one process and
*interleaved*: for every round, each model runs its timed block in turn, so load from other users
of the machine hits every model alike, and the reported figure is the median over rounds. Per
model, after warm-up:

- train:    steps/s of forward + backward + Adam step on a batch (loss = -mean log p(x));
- log-prob: examples/s of log p(x) under ``torch.inference_mode()`` on a large batch;
- sample:   examples/s of ``sample(n)``;
- memory:   estimated peak of a training step = parameters x 4 (weights, grads, Adam moments) +
            the bytes of every distinct storage saved for backward (measured with
            ``torch.autograd.graph.saved_tensors_hooks``; deterministic, unlike RSS on a shared box);
- FLOP:     forward + backward FLOP of a training step (``torch.utils.flop_counter``), so that
            steps/s x FLOP/step over the machine's measured fp32 matmul peak gives the fraction of
            peak the step reaches; likewise the FLOP of one ``sample(n)`` call for sampling's
            fraction of peak (a library at f% of peak can be beaten by at most 100/f times at
            the same FLOP count).

Architectures (NSF paper's UCI models, as in nflows' ``nsf`` experiments): step = random permutation
-> LU-linear (identity init) -> RQ-spline coupling (ResidualNet) or masked autoregressive RQ spline
(MADE with residual blocks), linear tails, then a final LU-linear. zuko cannot express this model
(no LU layer, its coupling is a MADE with two passes over *all* features, pre-activation-free
residual blocks, spline bound 5): its row is the nearest zuko NSF at the same width, bins and depth,
marked ``~``, with its own parameter count.

``--precision bf16-mixed`` adds bf16 rows: funnelrun's models with their conditioner nets in bf16 and
everything else fp32 (``funnelrun.transforms.nets.conditioner_precision``, what
``trainer.precision=bf16-mixed`` trains with), and the peers under a whole-forward
``torch.autocast(bf16)`` (the only bf16 they offer), where it runs; the fp32 rows stay, and the
"x nflows" column is always against nflows in fp32. The bf16 rows are training steps in bf16;
their log-prob and sampling columns are fp32 (funnelrun scores in fp32).

``--time-to-quality`` adds the time-to-quality rows: the POWER-sized coupling NSF trained on a
synthetic 6-D set (:func:`synthetic_6d`, a fixed nonlinear map of a Gaussian) by funnelrun (fp32,
and bf16 with ``--precision``) and by an nflows loop of the same architecture, with the same Adam
(lr 5e-4; ``--ttq-schedule cosine`` anneals it to 0 over the run), batches and initial seed, in
interleaved chunks of ``--ttq-chunk`` steps; the validation NLL (10,000 held-out points, fp32, off
the clock) after every chunk. It prints the training wall time until the validation NLL first
reaches ``--ttq-target`` (null if not within ``--ttq-steps``) and the final validation NLL of the
fixed-length run.
"""
from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from funnelrun.models.f_nsf import build_f_nsf
from funnelrun.models.nsf import build_nsf
from funnelrun.transforms.nets import conditioner_precision

warnings.filterwarnings("ignore")


@dataclass(frozen=True)
class Size:
    name: str
    features: int
    hidden: int
    blocks: int
    bins: int
    batch: int
    steps: int = 10
    tail_bound: float = 3.0


#: image sets of the funnels paper's Table 7 (funnelrun only): shape, bits, F-NSF latent size
IMAGE_SIZES = {"cifar10_5bit": ((3, 32, 32), 5, 192)}

SIZES = {
    "power": Size("POWER", features=6, hidden=256, blocks=2, bins=8, batch=512),
    "miniboone": Size("MINIBOONE", features=43, hidden=32, blocks=1, bins=4, batch=128),
}


# ------------------------------------------------------------------------------------------------
# Uniform wrappers: log_prob(x) -> (batch,), sample(n) -> (n, D)
# ------------------------------------------------------------------------------------------------
@dataclass
class Bench:
    library: str
    label: str
    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor]
    exact_arch: bool = True
    note: str = ""
    fused_adam: bool = False
    eager_log_prob: Optional[Callable[[Tensor], Tensor]] = None
    #: the training step's precision: None (fp32), "conditioners" (funnelrun's bf16-mixed) or
    #: "autocast" (a whole-forward torch.autocast(bf16): the peers)
    bf16: Optional[str] = None
    results: dict = field(default_factory=dict)
    times: dict = field(default_factory=lambda: {"train": [], "logp": [], "sample": []})


def funnelrun_models(size: Size, kind: str, args) -> list[Bench]:
    common = dict(
        num_steps=size.steps, transform=kind, hidden_features=size.hidden, num_blocks=size.blocks,
        num_bins=size.bins, tail_bound=size.tail_bound, dropout=0.0, linear="lu",
    )
    dropped = max(1, size.features // 3)
    out = []
    for tag, package in [("", "funnelrun")] + ([("@base", "funnelrun_base")] if args.baseline else []):
        nsf_builder = __import__(f"{package}.models.nsf", fromlist=["build_nsf"]).build_nsf
        torch.manual_seed(0)
        nsf = nsf_builder((size.features,), **common)
        out.append(Bench("funnelrun" + tag, "NSF", nsf, nsf.log_prob, nsf.sample, fused_adam=not tag))
        if tag:
            out[-1].note = "the same model built from the baseline checkout (before this change)"
            f_nsf_builder = __import__(f"{package}.models.f_nsf", fromlist=["build_f_nsf"]).build_f_nsf
            torch.manual_seed(0)
            base_f = f_nsf_builder((size.features,), **common, dim_reduction=max(1, size.features // 3),
                                   funnel_level=size.steps // 2, conditional="flow")
            out.append(Bench("funnelrun" + tag, "F-NSF", base_f, base_f.log_prob, base_f.sample, fused_adam=True,
                             note="the same F-NSF built from the baseline checkout"))
    if args.compile:
        from funnelrun.training.compile import maybe_compile

        torch.manual_seed(0)
        nsf_c = build_nsf((size.features,), **common)
        compiled = maybe_compile(nsf_c.log_prob, mode=None if args.compile == "default" else args.compile)
        out.append(Bench("funnelrun", "NSF+compile", nsf_c, compiled, nsf_c.sample,
                         note="log_prob under torch.compile (inductor); '1st step s' = compile time",
                         eager_log_prob=nsf_c.log_prob))
    torch.manual_seed(0)
    f_nsf = build_f_nsf((size.features,), **common, dim_reduction=dropped,
                        funnel_level=size.steps // 2, conditional="flow")
    out.append(Bench("funnelrun", "F-NSF", f_nsf, f_nsf.log_prob, f_nsf.sample,
                     note=f"drops {dropped} of {size.features} dims after {size.steps // 2} steps; "
                          "conditional flow"))
    if args.compile and args.compile_f_nsf:
        torch.manual_seed(0)
        f_nsf_c = build_f_nsf((size.features,), **common, dim_reduction=dropped,
                              funnel_level=size.steps // 2, conditional="flow")
        compiled = maybe_compile(f_nsf_c.log_prob, mode=None if args.compile == "default" else args.compile)
        out.append(Bench("funnelrun", "F-NSF+compile", f_nsf_c, compiled, f_nsf_c.sample,
                         eager_log_prob=f_nsf_c.log_prob))
    out += _f_mlp_bench(size, out[0].module, dropped)
    if args.precision == "bf16-mixed":
        for label, builder, extra in (("NSF", build_nsf, {}), ("F-NSF", build_f_nsf, dict(
                dim_reduction=dropped, funnel_level=size.steps // 2, conditional="flow"))):
            torch.manual_seed(0)
            model = builder((size.features,), **common, **extra)
            out.append(Bench("funnelrun", f"{label} bf16", model, model.log_prob, model.sample, fused_adam=True,
                             bf16="conditioners"))
    return out


def _f_mlp_bench(size: Size, nsf: nn.Module, dropped: int) -> list[Bench]:
    """F-MLP (funnels A.6 schedule) with its conditional width chosen to match the NSF's parameters,
    and the default-width F-MLP beside it (unmatched: the paper's own comparison).

    The parameter count grows monotonically with the conditional width, so a bisection over every
    integer width finds the one whose count is nearest the NSF's (a coarse grid of widths left gaps
    of 20-30%, always in the F-MLP's favour or against it by chance).
    """
    try:
        from funnelrun.models.f_mlp import build_f_mlp
    except ImportError:
        return []

    def build(width: int) -> nn.Module:
        torch.manual_seed(0)
        return build_f_mlp((size.features,), latent_dim=size.features - dropped,
                           conditional_hidden_features=width)

    target = count_params(nsf)
    try:
        low, high = 1, 1
        while count_params(build(high)) < target:
            low, high = high, 2 * high
        while high - low > 1:  # count(low) < target <= count(high), or low == high == 1
            middle = (low + high) // 2
            low, high = (middle, high) if count_params(build(middle)) < target else (low, middle)
        width = min((low, high), key=lambda w: abs(count_params(build(w)) - target))
        model = build(width)
    except Exception as err:  # noqa: BLE001 -- report and skip, never break the benchmark
        print(f"  [F-MLP] build_f_mlp failed: {err!r}; skipped")
        return []
    default_width = inspect.signature(build_f_mlp).parameters["conditional_hidden_features"].default
    default = build(default_width)
    return [
        Bench("funnelrun", "F-MLP", model, model.log_prob, model.sample,
              note=f"F-MLP (A.6 widths, latent {size.features - dropped}, conditional width {width}) "
                   f"at the NSF's parameter count ({count_params(model):,} vs {target:,})"),
        Bench("funnelrun", f"F-MLP@{default_width}", default, default.log_prob, default.sample,
              note=f"F-MLP as built by default (conditional width {default_width}), NOT parameter-matched "
                   f"({count_params(default):,} parameters): the paper's comparison (\"up to six times faster "
                   "than the flows\", funnels Sec. 4) of an F-MLP at its own size against the Table 5 flows"),
    ]


def nflows_model(size: Size, kind: str) -> Optional[Bench]:
    try:
        from nflows import distributions, flows, transforms
        from nflows.nn.nets import ResidualNet
        from nflows.utils import create_alternating_binary_mask
    except ImportError:
        return None
    D = size.features

    def base(i: int):
        if kind == "coupling":
            return transforms.PiecewiseRationalQuadraticCouplingTransform(
                mask=create_alternating_binary_mask(D, even=(i % 2 == 0)),
                transform_net_create_fn=lambda fin, fout: ResidualNet(
                    fin, fout, hidden_features=size.hidden, context_features=None,
                    num_blocks=size.blocks, activation=F.relu, dropout_probability=0.0,
                    use_batch_norm=False,
                ),
                num_bins=size.bins, tails="linear", tail_bound=size.tail_bound,
                apply_unconditional_transform=False,
            )
        return transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
            features=D, hidden_features=size.hidden, context_features=None, num_bins=size.bins,
            tails="linear", tail_bound=size.tail_bound, num_blocks=size.blocks,
            use_residual_blocks=True, random_mask=False, activation=F.relu,
            dropout_probability=0.0, use_batch_norm=False,
        )

    def linear():
        return transforms.CompositeTransform(
            [transforms.RandomPermutation(D), transforms.LULinear(D, identity_init=True)]
        )

    torch.manual_seed(0)
    steps = [transforms.CompositeTransform([linear(), base(i)]) for i in range(size.steps)]
    flow = flows.Flow(transforms.CompositeTransform(steps + [linear()]), distributions.StandardNormal([D]))
    return Bench("nflows", "NSF", flow, flow.log_prob, flow.sample)


def zuko_model(size: Size, kind: str) -> Optional[Bench]:
    try:
        import zuko
    except ImportError:
        return None
    torch.manual_seed(0)
    flow = zuko.flows.NSF(
        size.features, bins=size.bins, transforms=size.steps,
        passes=2 if kind == "coupling" else None,
        hidden_features=[size.hidden] * size.blocks, residual=True,
    )

    def log_prob(x: Tensor) -> Tensor:
        return flow().log_prob(x)

    def sample(n: int) -> Tensor:
        return flow().sample((n,))

    return Bench(
        "zuko", "~NSF", flow, log_prob, sample, exact_arch=False,
        note="nearest zuko NSF: MADE conditioner over all features, no LU, bound 5",
    )


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------
def peer_bf16(peer: Optional[Bench], size: Size) -> Optional[Bench]:
    """A peer's model (a fresh copy) trained under a whole-forward ``torch.autocast(bf16)``, or None
    with a note on stdout where a step fails so."""
    if peer is None:
        return None
    peer.label, peer.bf16 = f"{peer.label} bf16-autocast", "autocast"
    peer.note = "the whole forward under torch.autocast(bf16) (log-dets included)"
    x = torch.randn(size.batch, size.features)
    try:
        with training_precision("autocast", "cpu"):
            loss = -peer.log_prob(x).mean()
        loss.backward()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()}")
    except Exception as err:  # noqa: BLE001 -- report what the peer cannot do, then go on
        print(f"- {peer.library} {peer.label}: not timed, a training step fails ({type(err).__name__}: {err})")
        return None
    finally:
        peer.module.zero_grad(set_to_none=True)
    return peer


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def synchronize() -> None:
    """Wait for queued GPU work, so wall-clock intervals measure it (no-op on CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def matmul_peak_gflops(n: int = 1024, reps: int = 20, device: str = "cpu") -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        synchronize()
        t = time.perf_counter()
        a @ b
        synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class Trainer:
    """One Adam training step on a rotating pool of fixed batches (data drawn once, off the clock)."""

    def __init__(self, bench: Bench, data: list[Tensor]):
        self.bench, self.data, self.i = bench, data, 0
        self.params = [p for p in bench.module.parameters() if p.requires_grad]
        # funnelrun's DensityEstimator uses fused Adam; peers get torch's default Adam unless
        # --peer-fused-adam (the optimizer is not part of either library's flow code).
        self.opt = torch.optim.Adam(self.params, lr=1e-4, fused=bench.fused_adam or None)
        self.schedule: Optional[torch.optim.lr_scheduler.LRScheduler] = None

    def step(self) -> None:
        x = self.data[self.i % len(self.data)]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        with training_precision(self.bench.bf16, x.device.type):
            loss = -self.bench.log_prob(x).mean()
        loss.backward()
        self.opt.step()
        if self.schedule is not None:
            self.schedule.step()


def training_precision(bf16: Optional[str], device: str) -> ContextManager[object]:
    """The context of a bench's training forward (see ``Bench.bf16``)."""
    if bf16 == "conditioners":
        return conditioner_precision(torch.bfloat16, device)
    if bf16 == "autocast":
        return torch.autocast(device, dtype=torch.bfloat16)
    return nullcontext()


def step_flops_and_memory(bench: Bench, x: Tensor) -> tuple[float, float]:
    """(forward + backward FLOP, estimated peak training bytes) of one step."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    saved: dict[int, int] = {}

    def pack(t: Tensor):
        try:
            storage = t.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    log_prob = bench.eager_log_prob or bench.log_prob
    try:
        with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                training_precision(bench.bf16, x.device.type):
            loss = -log_prob(x).mean()
        with counter:
            loss.backward()
    finally:
        bench.module.zero_grad(set_to_none=True)
    param_bytes = sum(p.numel() * p.element_size() for p in bench.module.parameters())
    return float(counter.get_total_flops()), 4 * param_bytes + sum(saved.values())


def sample_flops(bench: Bench, n: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), evaluating(bench.module), counter:
        bench.sample(n)
    return float(counter.get_total_flops())


def timed(fn: Callable[[], object], n: int) -> float:
    synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    synchronize()
    return (time.perf_counter() - t) / n


def calibrate(fn: Callable[[], object], seconds: float) -> int:
    t = timed(fn, 1)
    return max(1, min(200, int(seconds / max(t, 1e-6))))


def run_size(size: Size, kind: str, args, peak: float) -> list[Bench]:
    benches = funnelrun_models(size, kind, args)
    for peer_model in (nflows_model, zuko_model):
        peer = peer_model(size, kind)
        if peer is None:
            continue
        peer.fused_adam = args.peer_fused_adam
        benches.append(peer)
        if args.precision == "bf16-mixed":
            bf16_peer = peer_bf16(peer_model(size, kind), size)
            if bf16_peer is not None:
                bf16_peer.fused_adam = args.peer_fused_adam
                benches.append(bf16_peer)
    g = torch.Generator().manual_seed(1)
    data = [torch.randn(size.batch, size.features, generator=g) for _ in range(8)]
    eval_x = torch.randn(args.eval_batch, size.features, generator=g)
    n_sample = args.sample_n if kind == "coupling" else max(64, args.sample_n // 4)
    return measure(benches, data, eval_x, n_sample, args, peak)


def image_benches(name: str, args) -> tuple[list[Bench], list[Tensor], Tensor]:
    """Table 7's CIFAR-10 5-bit NSF and F-NSF (funnels A.8; ``ImageFlowConfig``'s defaults), with the
    data's rescale + logit layers first as ``funnelrun`` builds them, on dequantized random 5-bit
    images; funnelrun only (the peers have no such model). Returns benches, batches, eval batch (on
    CPU: :func:`measure` moves everything to ``--device``)."""
    from funnelrun.transforms.preprocess import Logit, Rescale

    shape, bits, latent = IMAGE_SIZES[name]
    benches = []
    for label, builder, extra in (("NSF", build_nsf, {}), ("F-NSF", build_f_nsf, {"latent_dim": latent})):
        torch.manual_seed(0)
        model = builder(shape, **extra)
        for position, layer in enumerate([Rescale(bits), Logit(0.05)]):
            model.transform.transforms.insert(position, layer)
        benches.append(Bench("funnelrun", label, model, model.log_prob, model.sample,
                             fused_adam=True, note=f"Table 7 {name}, latent {latent}" if extra else ""))
    g = torch.Generator().manual_seed(1)

    def images(n: int) -> Tensor:
        levels = torch.randint(0, 2**bits, (n, *shape), generator=g).float()
        return levels + torch.rand(n, *shape, generator=g)

    return benches, [images(args.image_batch) for _ in range(2)], images(args.image_batch)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode (batch-norm statistics, no dropout: the image models) for log-prob and sampling."""
    module.eval()
    try:
        yield
    finally:
        module.train()


def _prepare(b: Bench, data: list[Tensor], eval_x: Tensor, n_sample: int, args) -> tuple:
    """Warm a bench up (first step timed: the compile time) and calibrate its timed blocks."""
    b.results["params"] = count_params(b.module)
    trainer = Trainer(b, data)
    t = time.perf_counter()
    trainer.step()
    synchronize()
    b.results["first_step_s"] = time.perf_counter() - t
    for _ in range(args.warmup):
        trainer.step()
    b.results["flop"], b.results["mem"] = step_flops_and_memory(b, data[0])
    b.results["sample_flop"] = sample_flops(b, n_sample)

    def logp(b=b):
        with torch.inference_mode(), evaluating(b.module):
            b.log_prob(eval_x)

    def sample(b=b):
        with torch.inference_mode(), evaluating(b.module):
            b.sample(n_sample)

    logp(), sample()
    n = {
        "train": calibrate(trainer.step, args.seconds),
        "logp": calibrate(logp, args.seconds),
        "sample": calibrate(sample, args.seconds),
    }
    return b, {"train": trainer.step, "logp": logp, "sample": sample}, n


def measure(benches: list[Bench], data: list[Tensor], eval_x: Tensor, n_sample: int, args, peak: float) -> list[Bench]:
    """Warm up, then time every bench's training step, log-prob and sampling in interleaved rounds."""
    if args.device != "cpu":
        for b in benches:
            b.module.to(args.device)
        data, eval_x = [x.to(args.device) for x in data], eval_x.to(args.device)
    jobs = []
    failed: list[Bench] = []
    for b in benches:
        try:
            jobs.append(_prepare(b, data, eval_x, n_sample, args))
        except Exception as err:  # noqa: BLE001 -- a peer's bf16 autocast may break its own spline
            print(f"- {b.library} {b.label}: not timed, a warm-up call failed ({type(err).__name__}: {err})")
            failed.append(b)

    for _ in range(args.rounds):  # interleaved: every model runs once per round, per metric
        for metric in ("train", "logp", "sample"):
            for b, fns, n in list(jobs):
                try:
                    b.times[metric].append(timed(fns[metric], n[metric]))
                except Exception as err:  # noqa: BLE001 -- as in the warm-up
                    print(f"- {b.library} {b.label}: dropped, a {metric} call failed ({type(err).__name__}: {err})")
                    failed.append(b)
                    jobs.remove((b, fns, n))
    benches = [b for b in benches if b not in failed]
    for b in benches:
        med = {m: statistics.median(ts) for m, ts in b.times.items()}
        b.results["train_sps"] = 1 / med["train"]
        b.results["train_spread"] = (max(b.times["train"]) - min(b.times["train"])) / med["train"]
        b.results["logp_eps"] = eval_x.shape[0] / med["logp"]
        b.results["sample_eps"] = n_sample / med["sample"]
        b.results["peak_frac"] = b.results["flop"] * b.results["train_sps"] / (peak * 1e9)
        b.results["sample_peak_frac"] = b.results["sample_flop"] / med["sample"] / (peak * 1e9)
    return benches


# ------------------------------------------------------------------------------------------------
# Time to quality
# ------------------------------------------------------------------------------------------------
#: the validation NLL (nats) the time-to-quality rows wait for on :func:`synthetic_6d`; --ttq-target.
#: 7.0 is reached by all three runs within 1,500 steps (--ttq-steps 1500 --ttq-chunk 50 on the
#: development CPU: funnelrun fp32 at 850 steps, bf16 at 700, nflows at 800; validation NLL moves
#: by about 0.03 nats between chunks at this constant learning rate)
TTQ_TARGET = 7.0


def synthetic_6d(n: int, generator: torch.Generator) -> Tensor:
    """A fixed nonlinear 6-D set: a Gaussian through a fixed linear map, an elementwise tanh and a
    coupling-like bend (x_2 += sin(x_1), ...), plus a little noise; a function of the generator."""
    mixing = torch.linspace(-1.0, 1.0, 36).reshape(6, 6).sin() + torch.eye(6)
    x = 2 * torch.tanh((torch.randn(n, 6, generator=generator) @ mixing) / 2)
    x = x + torch.roll(torch.sin(2 * x), 1, dims=1)
    return x + 0.05 * torch.randn(n, 6, generator=generator)


def time_to_quality(args) -> None:
    """The time-to-quality rows (module docstring)."""
    size = SIZES["power"]
    g = torch.Generator().manual_seed(7)
    val = synthetic_6d(10_000, g)
    batches = [synthetic_6d(size.batch, g) for _ in range(64)]
    runs = []
    for label, maker, bf16 in [("funnelrun NSF", lambda: funnelrun_nsf(size), None)] + (
        [("funnelrun NSF bf16", lambda: funnelrun_nsf(size), "conditioners")] if args.precision == "bf16-mixed" else []
    ) + [("nflows NSF", lambda: nflows_model(size, "coupling"), None)]:
        bench = maker()
        if bench is None:
            print(f"- {label}: skipped (not installed)")
            continue
        bench.bf16 = bench.bf16 or bf16
        trainer = Trainer(bench, batches)
        trainer.opt = torch.optim.Adam(trainer.params, lr=5e-4, fused=bench.library == "funnelrun" or None)
        if args.ttq_schedule == "cosine":  # the NSF paper's schedule: cosine annealing to 0 over the run
            trainer.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(trainer.opt, T_max=args.ttq_steps)
        runs.append({"label": label, "bench": bench, "trainer": trainer, "seconds": 0.0, "reached": None,
                     "curve": [], "clock": []})
    steps = 0
    while steps < args.ttq_steps:
        for run in runs:  # interleaved chunks: load hits every run alike
            t = time.perf_counter()
            for _ in range(args.ttq_chunk):
                run["trainer"].step()
            run["seconds"] += time.perf_counter() - t
            with torch.inference_mode():
                nll = -float(run["bench"].log_prob(val).double().mean())
            run["curve"].append(nll)
            run["clock"].append(run["seconds"])
            if run["reached"] is None and nll <= args.ttq_target:
                run["reached"] = (steps + args.ttq_chunk, run["seconds"])
        steps += args.ttq_chunk
    nflows = next((r for r in runs if r["label"] == "nflows NSF"), None)
    print(f"\n### Time to quality: POWER-sized coupling NSF on synthetic 6-D data, target validation NLL "
          f"{args.ttq_target} nats, {args.ttq_steps} steps of batch {size.batch}, Adam lr 5e-4 "
          f"({'cosine-annealed to 0' if args.ttq_schedule == 'cosine' else 'constant'})\n")
    print("| run | steps to target | train s to target | x nflows | final val NLL | best val NLL | train s total |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        reached = run["reached"]
        ratio = ""
        if reached and nflows is not None and nflows["reached"]:
            ratio = fmt_ratio(nflows["reached"][1] / reached[1])
        print(f"| {run['label']} | {reached[0] if reached else 'not reached'} "
              f"| {f'{reached[1]:.1f}' if reached else 'null'} | {ratio} | {run['curve'][-1]:.4f} "
              f"| {min(run['curve']):.4f} | {run['seconds']:.1f} |")
    by_label = {r["label"]: r for r in runs}
    if "funnelrun NSF bf16" in by_label:
        diff = by_label["funnelrun NSF bf16"]["curve"][-1] - by_label["funnelrun NSF"]["curve"][-1]
        print(f"- final validation NLL, bf16-mixed minus fp32: {diff:+.4f} nats")
    print("- training time only (the validation after each chunk is off the clock); interleaved chunks of "
          f"{args.ttq_chunk} steps; learning rate at the end "
          f"{runs[0]['trainer'].opt.param_groups[0]['lr']:.3g}")
    print("- curves (steps, train s, val NLL) every chunk:")
    for run in runs:
        points = ", ".join(f"({(i + 1) * args.ttq_chunk}, {c:.1f}, {v:.4f})"
                           for i, (c, v) in enumerate(zip(run["clock"], run["curve"])))
        print(f"  {run['label']}: {points}")


def funnelrun_nsf(size: Size, kind: str = "coupling") -> Bench:
    """funnelrun's NSF of the benchmark architecture (seed 0), as :func:`funnelrun_models` builds it."""
    torch.manual_seed(0)
    nsf = build_nsf((size.features,), num_steps=size.steps, transform=kind, hidden_features=size.hidden,
                    num_blocks=size.blocks, num_bins=size.bins, tail_bound=size.tail_bound, dropout=0.0, linear="lu")
    return Bench("funnelrun", "NSF", nsf, nsf.log_prob, nsf.sample, fused_adam=True)


def cpu_bf16_flags() -> str:
    """The CPU's native bf16 matmul flags from /proc/cpuinfo ('' if none, or not Linux)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return ""
    return " ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags)


def fmt_ratio(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.2f}x"


def size_title(size: Size, kind: str) -> str:
    return (f"{size.name}-sized {kind} NSF  (D={size.features}, {size.steps} steps, hidden "
            f"{size.hidden}, {size.blocks} block(s), {size.bins} bins, batch {size.batch})")


def print_table(title: str, benches: list[Bench]) -> None:
    ref = {b.library: b for b in benches if b.label == "NSF"}
    nflows = ref.get("nflows")
    print(f"\n### {title}\n")
    header = ("| model | params | train steps/s | x nflows | train %peak | log-prob ex/s | x nflows "
              "| sample ex/s | x nflows | sample %peak | MFLOP/step | est. peak MB | 1st step s |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for b in benches:
        r = b.results
        ratios = {}
        if nflows is not None:
            ratios = {
                m: r[k] / nflows.results[k]
                for m, k in (("train", "train_sps"), ("logp", "logp_eps"), ("sample", "sample_eps"))
            }
        print(
            f"| {b.library} {b.label} | {r['params']:,} | {r['train_sps']:.1f} "
            f"| {fmt_ratio(ratios.get('train'))} | {100 * r['peak_frac']:.1f}% | {r['logp_eps']:,.0f} "
            f"| {fmt_ratio(ratios.get('logp'))} | {r['sample_eps']:,.0f} | {fmt_ratio(ratios.get('sample'))} "
            f"| {100 * r['sample_peak_frac']:.1f}% | {r['flop'] / 1e6:,.1f} | {r['mem'] / 2**20:.1f} | {r['first_step_s']:.2f} |"
        )
    nsf_c = next((b for b in benches if b.label == "NSF+compile"), None)
    f_nsf_c = next((b for b in benches if b.label == "F-NSF+compile"), None)
    nsf = next((b for b in benches if b.library == "funnelrun" and b.label == "NSF"), None)
    notes = [f"{b.library} {b.label}: {b.note}" for b in benches if b.note]
    for b in benches:  # each funnel row against the NSF of its library and precision
        if not (b.library.startswith("funnelrun") and b.label.startswith("F-")) or "compile" in b.label:
            continue
        ref_label = "NSF bf16" if b.label.endswith(" bf16") else "NSF"
        ref_nsf = next((r for r in benches if r.library == b.library and r.label == ref_label), None)
        if ref_nsf is not None:
            notes.append(
                f"{b.library} {b.label} step time / {ref_label} step time = "
                f"{ref_nsf.results['train_sps'] / b.results['train_sps']:.2f}"
            )
    if nsf_c is not None and f_nsf_c is not None:
        notes.append(f"compiled: F-NSF step time / NSF step time = "
                     f"{nsf_c.results['train_sps'] / f_nsf_c.results['train_sps']:.2f}")
    if nflows is not None and nsf is not None and nflows.results["params"] != nsf.results["params"]:
        notes.append(
            f"parameter counts differ by {nsf.results['params'] - nflows.results['params']:+,}"
        )
    adam = "fused Adam for every library" if any(b.fused_adam for b in benches if b.library != "funnelrun") \
        else "funnelrun: fused Adam (as its trainer); peers: torch's default Adam"
    notes.append(f"optimizer: {adam}")
    if nflows is not None and not any(b.label.startswith("F-MLP") for b in benches):
        notes.append("F-MLP: SKIPPED (funnelrun.models.f_mlp.build_f_mlp not available)")
    for n in notes:
        print(f"- {n}")


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["miniboone", "power"], choices=sorted(SIZES) + sorted(IMAGE_SIZES),
                   help="cifar10_5bit: Table 7's image NSF and F-NSF (funnelrun only; meant for a GPU)")
    p.add_argument("--device", default="cpu", help="e.g. cuda (times include a synchronize)")
    p.add_argument("--image-batch", type=int, default=512, help="image configs' batch (Table 7: 512)")
    p.add_argument("--kinds", nargs="+", default=["coupling", "autoregressive"],
                   choices=["coupling", "autoregressive"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.4, help="target length of one timed block")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--eval-batch", type=int, default=4096)
    p.add_argument("--sample-n", type=int, default=1024)
    p.add_argument("--compile", nargs="?", const="default", default=None,
                   help="torch.compile funnelrun's log_prob (mode; compile time = '1st step s')")
    p.add_argument("--compile-f-nsf", action="store_true", help="with --compile: F-NSF too")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads; default: all cores on an idle machine, 1 when the load average "
                        "is >= 1 (OpenMP threads spinning against other users' processes make a 2-thread "
                        "step on a busy 2-core machine 10-30x slower and the timings meaningless)")
    p.add_argument("--peer-fused-adam", action="store_true",
                   help="give nflows/zuko the same fused Adam funnelrun's trainer uses")
    p.add_argument("--baseline", default=None, metavar="DIR",
                   help="also time NSF from an older checkout: DIR holds it as package funnelrun_base "
                        "(see scripts/make_baseline.sh)")
    p.add_argument("--quick", action="store_true", help="2 rounds of 0.15 s (smoke test)")
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"],
                   help="bf16-mixed: add bf16 rows (funnelrun: conditioners in bf16; peers: autocast)")
    p.add_argument("--time-to-quality", action="store_true",
                   help="add the time-to-quality rows (POWER-sized coupling NSF, synthetic 6-D data)")
    p.add_argument("--ttq-target", type=float, default=TTQ_TARGET, help="validation NLL target (nats)")
    p.add_argument("--ttq-steps", type=int, default=3000, help="fixed run length of the time-to-quality rows")
    p.add_argument("--ttq-chunk", type=int, default=50, help="steps per interleaved chunk (and per validation)")
    p.add_argument("--ttq-schedule", default="constant", choices=["constant", "cosine"],
                   help="learning rate of the time-to-quality runs: constant, or cosine-annealed to 0 over "
                        "--ttq-steps (the NSF paper's; settles the final validation NLL)")
    p.add_argument("--skip-throughput", action="store_true", help="only the time-to-quality rows")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 2, 0.15, 2
    if args.baseline:
        sys.path.insert(0, args.baseline)
    if args.threads is None:
        busy = os.getloadavg()[0] >= 1.0 if hasattr(os, "getloadavg") else False
        args.threads = 1 if busy else torch.get_num_threads()
    torch.set_num_threads(args.threads)

    peak_n = 1024 if args.device == "cpu" else 8192  # a GPU needs a larger product to reach its peak
    peak = max(matmul_peak_gflops(peak_n, device=args.device) for _ in range(3))
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    versions = {"torch": torch.__version__}
    for lib in ("nflows", "zuko"):
        try:
            versions[lib] = __import__(lib).__version__ if lib != "nflows" else __import__(
                "nflows.version", fromlist=["VERSION"]).VERSION
        except ImportError:
            versions[lib] = "not installed (pip install -e '.[bench]')"
    print("# funnelrun throughput benchmark")
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, {platform.python_implementation()} "
          f"{platform.python_version()}")
    print("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"- load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.precision == "bf16-mixed" and args.device == "cpu":
        print(f"- CPU bf16 matmul instructions (avx512_bf16 / amx_bf16): {cpu_bf16_flags() or 'none'}"
              f"{'' if cpu_bf16_flags() else ' (bf16 matmuls are emulated here: slower than fp32)'}")
    print(f"- fp32 matmul peak ({peak_n}^3, best of 60): {peak:.0f} GFLOP/s")
    print(f"- medians of {args.rounds} interleaved rounds of ~{args.seconds}s blocks; log-prob batch "
          f"{args.eval_batch}; sampling {args.sample_n} (coupling) / {max(64, args.sample_n // 4)} (AR)"
          f"{'; funnelrun compiled: ' + args.compile if args.compile else ''}")
    for name in [] if args.skip_throughput else args.configs:
        if name in IMAGE_SIZES:
            benches, data, eval_x = image_benches(name, args)
            print_table(f"{name} multi-scale NSF and F-NSF (Table 7), batch {args.image_batch}, on {args.device}",
                        measure(benches, data, eval_x, args.image_batch, args, peak))
            continue
        for kind in args.kinds:
            size = SIZES[name]
            benches = run_size(size, kind, args, peak)
            print_table(size_title(size, kind), benches)
            sys.stdout.flush()
    if args.time_to_quality:
        time_to_quality(args)
    try:
        load = os.getloadavg()
        print(f"\n- load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass


if __name__ == "__main__":
    main()
