"""Skipping optimizer steps whose gradients are not finite, without a host-device sync per step.

The check writes a flag on the gradients' device with the kernel ``torch.amp.GradScaler`` uses
(``_amp_foreach_non_finite_check_and_unscale_``, here with a scale of exactly 1, which leaves every
gradient bit-for-bit as it was), and hands the flag to fused Adam as ``optimizer.found_inf``, the
attribute GradScaler sets. When the flag is set, fused Adam changes nothing: no parameter, no
moment, and its step count, incremented before the kernel, is decremented again. That is what
dropping the gradients (``zero_grad(set_to_none=True)``) did, so training is the same, without
``bool(flag)`` stalling the host until the device has finished the step.

The host still needs the flags to count skipped steps and to stop after too many in a row: each
flag is copied to the host asynchronously (pinned memory and an event on CUDA) and read once it has
arrived: at once on CPU, where there is no device to wait for, usually one step later on a GPU,
and at the latest when :meth:`NonFiniteFlags.arrived` is called with ``wait=True``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import Tensor


@dataclass
class _Flag:
    step: int
    host: Tensor
    event: Optional["torch.cuda.Event"]

    def ready(self) -> bool:
        return self.event is None or self.event.query()


class NonFiniteFlags:
    """Flags the optimizer steps with a non-finite gradient and reports them, in order, once known."""

    def __init__(self) -> None:
        self._pending: deque[_Flag] = deque()

    def flag(self, optimizer: torch.optim.Optimizer, grads: list[Tensor], step: int) -> None:
        """Check ``grads`` for a non-finite value and make ``optimizer`` (fused Adam) skip the update if
        there is one; ``step`` is remembered for the report."""
        device = grads[0].device
        found_inf = torch.zeros((), device=device)  # 0-dim, like the step counts fused Adam corrects with it
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch.ones((), device=device))
        # read by fused Adam's step, as when torch.amp.GradScaler sets it (not an attribute the stubs declare)
        optimizer.found_inf = found_inf  # type: ignore[attr-defined]
        if device.type == "cuda":
            host = torch.empty((), pin_memory=True)
            host.copy_(found_inf, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._pending.append(_Flag(step, host, event))
        else:  # CPU (or a device without events: its .cpu() waits, as before)
            self._pending.append(_Flag(step, found_inf.cpu(), None))

    def arrived(self, wait: bool = False) -> Iterator[tuple[int, bool]]:
        """(step, finite) of every flagged step whose flag has reached the host, oldest first
        (``wait``: all of them, waiting for the device)."""
        while self._pending and (wait or self._pending[0].ready()):
            flag = self._pending.popleft()
            if flag.event is not None:
                flag.event.synchronize()
            yield flag.step, not bool(flag.host)
