"""Optional ``torch.compile`` with a clean fallback to eager execution.

On CPU the small flows funnelrun trains (UCI-sized NSFs) are bound by per-operation overhead, not
arithmetic; inductor fuses the spline's few dozen elementwise operations into a handful of loops
(about 1.5-3x faster steps, see scripts/bench_throughput.py). Compilation costs tens of seconds to
minutes on a 2-core machine, happens again for each new input shape, and needs a C++ compiler, so it
is opt-in and may fail: :func:`maybe_compile` then warns once and runs the eager function.

    log_prob = maybe_compile(model.log_prob, enabled=cfg.trainer.compile)
    loss = -log_prob(x).mean()

The compiled callable keeps no reference that breaks pickling of the model (it is a separate
object: keep it on the LightningModule or in the loop, not as an attribute of the ``nn.Module``).
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Optional


class MaybeCompiled:
    """``fn`` compiled with ``torch.compile``; falls back to ``fn`` itself if compiling fails.

    ``compiled`` says whether calls run the compiled code; ``compile_seconds`` is the wall time
    of the first call (tracing + code generation + one run), reported separately from steady-state
    throughput; ``error`` holds the reason for a fallback.
    """

    def __init__(self, fn: Callable[..., Any], enabled: bool = True, **compile_kwargs: Any):
        self.fn = fn
        self.compile_seconds: Optional[float] = None
        self.error: Optional[BaseException] = None
        self._compiled: Optional[Callable[..., Any]] = None
        if enabled:
            try:
                import torch

                self._compiled = torch.compile(fn, **compile_kwargs)
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
