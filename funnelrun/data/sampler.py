"""A resumable shuffling batch sampler: the batch of every global step is a pure function of
(seed, step), so a run resumed mid-epoch sees exactly the batches the uninterrupted run would."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler

from funnelrun.errors import FunnelrunError


class StepBatchSampler(Sampler[list[int]]):
    """Yields ``len(self)`` batches per epoch (drop_last); epoch e is a permutation drawn from a
    generator seeded by (seed, e). ``start_step`` makes the first epoch start mid-way.

    With ``world_size`` processes (DDP), ``batch_size`` is the global batch: every rank draws the
    same permutation and takes its contiguous share, so N processes see exactly the batches one
    process would (no sampler padding, no duplicated examples)."""

    def __init__(
        self, num_examples: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world_size: int = 1
    ):
        if batch_size % world_size:
            raise FunnelrunError(
                f"data.batch_size={batch_size} is the global batch and must be divisible by the "
                f"{world_size} processes of the run; choose a multiple of {world_size}"
            )
        if num_examples < batch_size:
            raise FunnelrunError(
                f"the training split has {num_examples} examples, fewer than one batch of {batch_size}; "
                "lower data.batch_size"
            )
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self._next_step = start_step
        share = batch_size // world_size
        self._share = slice(rank * share, (rank + 1) * share)

    def __len__(self) -> int:
        return self.num_examples // self.batch_size

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_examples, generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        steps_per_epoch = len(self)
        epoch, offset = divmod(self._next_step, steps_per_epoch)
        perm = self._permutation(epoch)
        for b in range(offset, steps_per_epoch):
            self._next_step = epoch * steps_per_epoch + b + 1
            yield perm[b * self.batch_size : (b + 1) * self.batch_size][self._share].tolist()
