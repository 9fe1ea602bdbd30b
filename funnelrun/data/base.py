"""What every funnelrun DataModule shares: data shape, bits, resumable training batches."""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sized, cast

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from funnelrun.data.sampler import StepBatchSampler
from funnelrun.transforms.base import Transform


class TensorRows(Dataset):
    """A dataset of the rows of one tensor: batches are plain ``(batch, *row_shape)`` tensors."""

    def __init__(self, data: Tensor):
        self.data = data

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.data[i]

    def __getitems__(self, indices: list[int]) -> Tensor:
        """A whole batch in one indexing operation (DataLoader's batched fetch), not one per row."""
        return self.data[torch.as_tensor(indices)]


def collate_batches(batch: Any) -> Any:
    """DataLoader's collate: a batch fetched whole by a dataset's ``__getitems__`` (a tensor, or a
    batch object such as the images' ``QuantizedBatch``) passes as it is; a list of examples is
    stacked as usual."""
    return default_collate(batch) if isinstance(batch, list) else batch


class FunnelDataModule(pl.LightningDataModule):
    """Base DataModule. Subclasses set ``data_shape``, ``bits`` (None for continuous data, where
    BPD is undefined), and the ``train``/``val``/``test`` datasets.

    The training order depends only on (``seed``, global step): the step is saved in checkpoints
    through Lightning's datamodule ``state_dict`` hook, so resuming mid-epoch is exact.
    """

    data_shape: tuple[int, ...] = ()
    bits: Optional[int] = None
    #: ((xmin, ymin), (xmax, ymax)) for 2-D data (plots, density integral); None otherwise.
    bounds: Optional[tuple[tuple[float, float], tuple[float, float]]] = None
    #: exact log density of the generating process, when known (plane sets).
    true_log_density: Optional[Callable[[Tensor], Tensor]] = None
    #: the training batch sampler (a subclass may key its batches, e.g. by step)
    batch_sampler_class: type[StepBatchSampler] = StepBatchSampler
    #: pinned (page-locked) batches; None: when the trainer's model is on a GPU
    pin_memory: Optional[bool] = None

    def __init__(self, batch_size: int, eval_batch_size: int, seed: int, num_workers: int = 0):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.num_workers = num_workers
        self._start_step = 0
        self.train: Optional[Dataset] = None
        self.val: Optional[Dataset] = None
        self.test: Optional[Dataset] = None

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader_options(self) -> dict[str, Any]:
        """Workers (``data.num_workers``; kept alive between epochs and validations) and pinned memory
        when the model is on a GPU (batches are then copied asynchronously). The batches are the same
        whatever the number of workers: the sampler, in the main process, decides each one."""
        trainer = getattr(self, "trainer", None)
        pin = self.pin_memory
        if pin is None:
            pin = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0, "pin_memory": pin,
                "collate_fn": collate_batches}

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        sampler = self.batch_sampler_class(
            len(cast(Sized, self.train)), self.batch_size, self.seed, start_step=self._start_step, rank=rank,
            world_size=world,
        )
        # a private generator: creating loader iterators never draws from the global RNG
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(cast(Dataset, self.train), batch_sampler=sampler, generator=generator,
                          **self._loader_options())

    def preprocessing(self) -> list[Transform]:
        """Bijective layers the model starts with (e.g. image rescaling and logit), so their Jacobian
        is part of every log-likelihood; ``build_model`` prepends them. None by default."""
        return []

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        """Every example exactly once over all ranks: rank r takes examples r, r + N, ... (no
        padding; the module sums NLLs and counts, then reduces both across ranks)."""
        rank, world = self._rank_and_world()
        if world > 1:
            dataset = Subset(dataset, range(rank, len(cast(Sized, dataset)), world))
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, **self._loader_options())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(cast(Dataset, self.val))  # set by setup()

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(cast(Dataset, self.test))

    def state_dict(self) -> dict[str, Any]:
        trainer = getattr(self, "trainer", None)
        return {"global_step": trainer.global_step if trainer is not None else 0}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._start_step = int(state_dict.get("global_step", 0))
