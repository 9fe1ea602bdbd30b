"""``torch.compile`` of the training log-density: on, off, or ``auto`` (the default), with a clean
fallback to eager execution.

On CPU the small flows funnelrun trains (UCI-sized NSFs) are bound by per-operation overhead, not
arithmetic; inductor fuses the spline's few dozen elementwise operations into a handful of loops
(about 1.5-3x faster steps, see scripts/bench_throughput.py). Compilation costs tens of seconds to
minutes on a 2-core machine, happens again for each new input shape, and needs a C++ compiler, so it
may fail: :class:`MaybeCompiled` then warns once and runs the eager function.

    log_prob = maybe_compile(model.log_prob, enabled=True)
    loss = -log_prob(x).mean()

``compile=auto`` (:class:`AutoCompiled`) runs the first steps eagerly, timing them, and compiles only
when the steps left would pay the compile time back (:func:`compile_pays_back`).

The compiled callable keeps no reference that breaks pickling of the model (it is a separate
object: keep it on the LightningModule or in the loop, not as an attribute of the ``nn.Module``).
"""
from __future__ import annotations

import statistics
import time
import warnings
from typing import Any, Callable, Optional


class MaybeCompiled:
    """``fn`` compiled with ``torch.compile``; falls back to ``fn`` itself if compiling fails.

    ``compiled`` says whether calls run the compiled code; ``compile_seconds`` is the wall time
    of the first call (tracing + code generation + one run), reported separately from steady-state
    throughput; ``error`` holds the reason for a fallback; ``decision`` is :class:`AutoCompiled`'s
    (None here).
    """

    decision: Optional[str] = None

    def __init__(self, fn: Callable[..., Any], enabled: bool = True, **compile_kwargs: Any):
        self.fn = fn
        self.compile_seconds: Optional[float] = None
        self.error: Optional[BaseException] = None
        self._compiled: Optional[Callable[..., Any]] = None
        self._compile_kwargs = compile_kwargs
        if enabled:
            self._compile()

    def _compile(self) -> None:
        try:
            import torch

            self._compiled = torch.compile(self.fn, **self._compile_kwargs)
        except Exception as err:  # noqa: BLE001 -- e.g. torch.compile unsupported here
            self._fall_back(err)

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def _fall_back(self, err: BaseException) -> None:
        self.error, self._compiled = err, None
        warnings.warn(
            f"torch.compile unavailable or failed ({type(err).__name__}: {err}); running eagerly",
            RuntimeWarning,
            stacklevel=3,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is None:
            return self.fn(*args, **kwargs)
        first = self.compile_seconds is None
        start = time.perf_counter()
        try:
            out = self._compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 -- a compiler error, or the caller's own
            out = self.fn(*args, **kwargs)  # the caller's error raises here, compiled code kept
            self._fall_back(err)
            return out
        if first:
            self.compile_seconds = time.perf_counter() - start
        return out


def maybe_compile(fn: Callable[..., Any], enabled: bool = True, **compile_kwargs: Any) -> MaybeCompiled:
    """``torch.compile(fn, **compile_kwargs)`` if ``enabled`` and it works, else ``fn`` (see module doc)."""
    return MaybeCompiled(fn, enabled=enabled, **compile_kwargs)


#: eager calls timed before ``compile=auto`` decides (the first WARMUP_CALLS are not timed: allocator
#: and thread-pool start-up)
WARMUP_CALLS = 3
PROBE_CALLS = 10
#: the compiled step's time as a fraction of the eager step's, assumed by ``compile=auto``: the
#: largest (least favourable) of the eight measured by ``scripts/funnel_overhead.py --recipes table1
#: --compile`` (Table 1 NSF and F-NSF, MINIBOONE and POWER, coupling and autoregressive, one thread on
#: the development CPU: 0.39-0.48 at MINIBOONE size, 0.67-0.80 at POWER size, where fp32 matmuls bound
#: the step); an assumption about this run, not a measurement of it
COMPILED_STEP_FRACTION = 0.8
#: the compile time ``compile=auto`` assumes: COMPILE_STEPS eager step times (compile time grows with
#: the graph, as the eager step time of an overhead-bound model does), at least MIN_COMPILE_SECONDS;
#: the same eight measurements took 760-3,600 eager steps' time to compile (67-341 s), the largest here
COMPILE_STEPS = 3600
MIN_COMPILE_SECONDS = 30.0


def compile_pays_back(step_seconds: float, steps_left: int) -> tuple[bool, str]:
    """Whether compiling pays back over ``steps_left`` steps of ``step_seconds`` each (eager), and why:
    saving = steps_left * step_seconds * (1 - COMPILED_STEP_FRACTION) against the estimated compile
    time max(MIN_COMPILE_SECONDS, COMPILE_STEPS * step_seconds)."""
    saving = steps_left * step_seconds * (1 - COMPILED_STEP_FRACTION)
    cost = max(MIN_COMPILE_SECONDS, COMPILE_STEPS * step_seconds)
    verdict = saving > cost
    why = (
        f"{steps_left} steps left at {step_seconds * 1e3:.1f} ms (eager) would save about {saving:.0f} s "
        f"{'>' if verdict else '<='} the estimated compile time {cost:.0f} s"
    )
    return verdict, why


class AutoCompiled(MaybeCompiled):
    """``compile=auto``: ``fn`` eagerly for WARMUP_CALLS + PROBE_CALLS calls (one per training step),
    then compiled if :func:`compile_pays_back` for the ``steps_left()`` steps remaining, else eager to
    the end. ``decision`` says which and why (None until decided); the time between two calls is the
    whole step's (backward, optimizer, data), the median over the probe."""

    def __init__(self, fn: Callable[..., Any], steps_left: Callable[[], int], **compile_kwargs: Any):
        super().__init__(fn, enabled=False, **compile_kwargs)
        self.steps_left = steps_left
        self.decision = f"eager: the run ended within the {WARMUP_CALLS + PROBE_CALLS + 1} steps timed before deciding"
        self._decided = False
        self._calls: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._decided:
            self._calls.append(time.perf_counter())
            if len(self._calls) > WARMUP_CALLS + PROBE_CALLS:
                self._decide()
        return super().__call__(*args, **kwargs)

    def _decide(self) -> None:
        times = self._calls[WARMUP_CALLS:]
        step = statistics.median(b - a for a, b in zip(times, times[1:]))
        verdict, why = compile_pays_back(step, self.steps_left())
        self.decision, self._decided = f"{'compiled' if verdict else 'eager'}: {why}", True
        if verdict:
            self._compile()
