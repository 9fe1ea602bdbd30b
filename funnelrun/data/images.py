"""Image sets as n-bit, uniformly dequantized (C, H, W) batches, with their preprocessing layers.

Readers (one per file format: :mod:`~funnelrun.data.idx`, :mod:`~funnelrun.data.cifar`,
:mod:`~funnelrun.data.imagenet`, :mod:`~funnelrun.data.celeba`, :mod:`~funnelrun.data.digits`) give the
official splits as 8-bit images; CIFAR-10, ImageNet 32/64 and CelebA go through the prepared-data
cache (:mod:`~funnelrun.data.cache`), memory-mapped, so the processes of a node share one copy. Images
are reduced to n bits as they are read, x_n = floor(x_8 / 2^(8-n)), and dequantized, y = x_n + u with
u ~ U[0, 1)^D, in the integer scale [0, 2^n):

- training batches travel as uint8 images (:class:`QuantizedBatch`, pinned when the model is on a
  GPU) and u is drawn where they land, on the device, in :meth:`ImageDataModule.on_after_batch_transfer`:
  the u of a step's whole global batch comes from a generator seeded by (``data.seed``, global step),
  and each rank takes the rows of its share (:func:`training_noise`). The noise is therefore a
  function of (seed, step, position in the global batch) and of the device type (CPU and CUDA
  generators differ), not of the number of ranks or data loader workers, so a resumed run draws
  exactly what the uninterrupted one would;
- evaluation noise is fixed per example (seeded by its index in the split, drawn on the CPU), so a
  test BPD is the same in every run, on any device and over any number of ranks.

The model starts with :meth:`ImageDataModule.preprocessing` (Rescale, then Logit or Centre,
:mod:`funnelrun.transforms.preprocess`), so

    BPD = -log p_model(y) / (D ln 2)

with every preprocessing Jacobian, Rescale's -D n ln 2 included, inside log p_model (funnels paper
Tables 2 and 4 report this quantity on the test split).
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from funnelrun.data.base import FunnelDataModule
from funnelrun.data.cache import CacheUnwritable, cached_splits
from funnelrun.data.celeba import celeba_sources
from funnelrun.data.cifar import cifar10_sources
from funnelrun.data.digits import load_digits
from funnelrun.data.download import download as torchvision_download
from funnelrun.data.idx import load_idx
from funnelrun.data.image_files import ImageSplits, MissingDataFiles, SourceFiles
from funnelrun.data.imagenet import imagenet_sources
from funnelrun.data.plane import derived_seed
from funnelrun.data.sampler import StepBatchSampler
from funnelrun.errors import FunnelrunError
from funnelrun.options import Preprocessing
from funnelrun.transforms.base import Transform
from funnelrun.transforms.preprocess import Centre, Logit, Rescale

#: sets read through the prepared-data cache: name -> its source files
CACHED: dict[str, Callable[[Path], SourceFiles]] = {
    "cifar10": cifar10_sources,
    "imagenet32": partial(imagenet_sources, 32),
    "imagenet64": partial(imagenet_sources, 64),
    "celeba": celeba_sources,
}
#: small sets, read into memory (tens of MB: a cache would not pay)
IN_MEMORY: dict[str, Callable[[Path], ImageSplits]] = {
    "mnist": partial(load_idx, "mnist"),
    "fashion_mnist": partial(load_idx, "fashion_mnist"),
    "digits": lambda data_dir: load_digits(),
}
READERS = sorted([*CACHED, *IN_MEMORY])
#: seed of the validation subset carved from the training split (fixed: the same for every run)
VAL_SPLIT_SEED = 0
#: seed of the fixed evaluation noise (independent of ``data.seed``: a model's test BPD is one number)
EVAL_NOISE_SEED = 0


def reduce_bits(images: np.ndarray, bits: int) -> np.ndarray:
    """x_n = floor(x_8 / 2^(8 - n)) of uint8 images (a right shift)."""
    return images >> (8 - bits) if bits < 8 else images


def validation_rows(num_train: int, val_size: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows of train without the validation images, the ``val_size`` validation rows): a fixed random
    subset of the training split (numpy's frozen ``RandomState(VAL_SPLIT_SEED)``), both in file order."""
    if not 1 <= val_size < num_train:
        raise FunnelrunError(
            f"data.val_size={val_size}: {name} has {num_train} training images; "
            f"hold out between 1 and {num_train - 1}"
        )
    order = np.random.RandomState(VAL_SPLIT_SEED).permutation(num_train)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


#: the largest u added: x + u stays below x + 1 in float32 for every integer 0 <= x <= 255 (256 - 2^-16 is
#: a float32, the largest below 256; u ~ U[0, 1) in float32 reaches 1 - 2^-24, and x + u would round to x + 1)
MAX_NOISE = 1 - 2**-16


def dequantize(x: Tensor, u: Tensor) -> Tensor:
    """float32 x + min(u, :data:`MAX_NOISE`) of integer-valued x (any dtype) and u in [0, 1), computed
    in place in ``u`` (the clamp moves a probability of 2^-16 per value by less than 2^-16)."""
    return u.clamp_(max=MAX_NOISE).add_(x)


def training_noise(seed: int, step: int, global_batch: int, shape: Sequence[int], device: torch.device) -> Tensor:
    """u ~ U[0, 1) of the whole global batch of training step ``step``, (global_batch, *shape) on
    ``device``, from a generator there seeded by (seed, step): each rank takes its rows."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derived_seed(seed, "train", str(step)))
    return torch.rand((global_batch, *shape), generator=generator, device=device)


class NBitImages:
    """The images ``rows`` (all when None) of a uint8 (N, C, H, W) array, a memory-mapped cache file or
    an array in memory, reduced to ``bits`` bits as they are read (nothing is copied up front).

    Pickled (DataLoader workers under spawn, ``ddp_spawn``) a memory-mapped array travels as its file
    name and is mapped again, never as a copy of the data.
    """

    def __init__(self, array: np.ndarray, bits: int, rows: Optional[np.ndarray] = None):
        self.array = array
        self.bits = bits
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.array)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.array.shape[1:])

    def take(self, indices: np.ndarray) -> Tensor:
        """uint8 n-bit images at ``indices`` (positions in this set), (len(indices), C, H, W)."""
        rows = indices if self.rows is None else self.rows[indices]
        return torch.from_numpy(reduce_bits(np.asarray(self.array[rows]), self.bits))

    def __getitem__(self, index: int | slice) -> Tensor:
        if isinstance(index, slice):
            return self.take(np.arange(*index.indices(len(self))))
        return self.take(np.asarray([range(len(self))[index]]))[0]

    def numpy(self) -> np.ndarray:
        """All of them, in memory (for small sets and tests)."""
        return self.take(np.arange(len(self))).numpy()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if isinstance(self.array, np.memmap) and self.array.filename is not None:
            state["array"] = ("memmap", self.array.filename, self.array.offset, self.array.shape)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["array"], tuple):
            _, filename, offset, shape = state["array"]
            state["array"] = np.memmap(filename, dtype=np.uint8, mode="r", offset=offset, shape=shape)
        self.__dict__.update(state)


class QuantizedBatch:
    """A training batch on its way to the device: uint8 n-bit ``images`` and the global ``step`` that
    keys its noise. It moves (``to``) and pins like a tensor, but is no tensor: a model handed one
    without :meth:`ImageDataModule.on_after_batch_transfer` fails instead of training on integers."""

    def __init__(self, images: Tensor, step: int):
        self.images = images
        self.step = step

    def to(self, device: torch.device | str, **kwargs: Any) -> "QuantizedBatch":
        device = torch.device(device)
        kwargs.setdefault("non_blocking", device.type == "cuda")  # asynchronous from pinned memory
        return QuantizedBatch(self.images.to(device, **kwargs), self.step)

    def pin_memory(self) -> "QuantizedBatch":
        return QuantizedBatch(self.images.pin_memory(), self.step)

    def __len__(self) -> int:
        return len(self.images)


class TrainingImages(Dataset):
    """Training images, fetched as whole :class:`QuantizedBatch` es from the keys ``[(step, index), ...]``
    of :class:`StepKeyedBatchSampler`; ``dataset[index]`` is one uint8 image."""

    def __init__(self, images: NBitImages):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]

    def __getitems__(self, keys: list[tuple[int, int]]) -> QuantizedBatch:
        indices = np.fromiter((index for _, index in keys), dtype=np.int64, count=len(keys))
        return QuantizedBatch(self.images.take(indices), keys[0][0])


class EvalImages(Dataset):
    """Validation or test images as float32 x_n + u, u fixed by the example's index (the same in every
    run, on any device and over any number of ranks)."""

    def __init__(self, images: NBitImages):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> Tensor:
        x = self.images.take(np.asarray(indices, dtype=np.int64))
        generator = torch.Generator()
        u = torch.stack([
            torch.rand(x.shape[1:], generator=generator.manual_seed(derived_seed(EVAL_NOISE_SEED, "eval", str(i))))
            for i in indices
        ])
        return dequantize(x, u)


class StepKeyedBatchSampler(StepBatchSampler):
    """:class:`StepBatchSampler` whose batches are ``[(step, index), ...]``: the global step travels
    with the batch to key its noise."""

    def __iter__(self):
        for batch in super().__iter__():
            step = self._next_step - 1  # the global step of this batch
            yield [(step, index) for index in batch]


class ImageDataModule(FunnelDataModule):
    """Image set ``name`` (:data:`READERS`) read from ``data_dir`` in ``__init__``, reduced to ``bits`` bits.

    Splits: the official train and test splits; validation is the set's official one (CelebA, with
    ``val_size`` null) or ``val_size`` training images held out (a fixed subset, removed from train;
    never the test split). ``seed`` sets the training order and noise; the splits never depend on it.
    The sets of :data:`CACHED` are memory-mapped from the prepared-data cache in ``cache_dir``
    (default ``<data_dir>/.funnelrun-cache``), written on first use; ``cache=False`` reads them into
    memory instead, in every process. Never downloads, unless ``download`` is true (torchvision's
    downloaders, when importable).
    """

    batch_sampler_class = StepKeyedBatchSampler

    bits: int

    def __init__(
        self,
        name: str,
        data_dir: str = "data",
        bits: int = 8,
        batch_size: int = 512,
        eval_batch_size: int = 1024,
        seed: int = 1234,
        num_workers: int = 0,
        val_size: Optional[int] = 5000,
        preprocessing: Preprocessing | str = Preprocessing.logit,
        logit_alpha: float = 0.05,
        download: bool = False,
        cache: bool = True,
        cache_dir: Optional[str] = None,
    ):
        if name not in READERS:
            raise FunnelrunError(f"unknown image dataset {name!r}; valid names: {READERS}")
        if not 1 <= bits <= 8:
            raise FunnelrunError(f"data.bits={bits} must be between 1 and 8")
        if not 0 < logit_alpha < 0.5:
            raise FunnelrunError(f"data.logit_alpha={logit_alpha} must be in (0, 0.5)")
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, num_workers=num_workers)
        self.name = name
        self.bits = bits
        self.preprocessing_kind = Preprocessing(preprocessing)
        self.logit_alpha = logit_alpha
        splits = self._read(name, Path(data_dir), download, cache, cache_dir)
        self.train_data, self.val_data = self._train_and_val(name, splits, val_size, bits)
        self.test_data = NBitImages(splits.test, bits)
        self.data_shape = tuple(self.train_data.shape[1:])
        self.train = TrainingImages(self.train_data)
        self.val, self.test = EvalImages(self.val_data), EvalImages(self.test_data)

    @staticmethod
    def _read(name: str, data_dir: Path, download: bool, cache: bool, cache_dir: Optional[str]) -> ImageSplits:
        try:
            return ImageDataModule._read_once(name, data_dir, cache, cache_dir)
        except MissingDataFiles as missing:
            if not download:
                raise
            torchvision_download(name, data_dir, missing)
            return ImageDataModule._read_once(name, data_dir, cache, cache_dir)

    @staticmethod
    def _read_once(name: str, data_dir: Path, cache: bool, cache_dir: Optional[str]) -> ImageSplits:
        if name in IN_MEMORY:
            return IN_MEMORY[name](data_dir)
        sources = CACHED[name](data_dir)
        if not cache:
            return sources.read()
        try:
            return cached_splits(sources, cache_dir)
        except CacheUnwritable as exc:
            if cache_dir is not None:
                raise FunnelrunError(
                    f"{exc}: data.cache_dir={cache_dir} must be a directory this process can write (or hold a "
                    "cache written before)"
                ) from None
            print(
                f"funnelrun: warning: {exc}. Reading {name} into memory instead, in every process (slow, and one copy "
                "per process). Set data.cache_dir=<a writable directory> to cache it there, or data.cache=false to "
                "silence this",
                file=sys.stderr, flush=True,
            )
            return sources.read()

    @staticmethod
    def _train_and_val(
        name: str, splits: ImageSplits, val_size: Optional[int], bits: int
    ) -> tuple[NBitImages, NBitImages]:
        if splits.val is None:
            if val_size is None:
                raise FunnelrunError(
                    f"{name} has no official validation split: set data.val_size=<training images to hold out>"
                )
            train_rows, val_rows = validation_rows(len(splits.train), val_size, name)
            return NBitImages(splits.train, bits, train_rows), NBitImages(splits.train, bits, val_rows)
        if val_size is not None:
            raise FunnelrunError(
                f"{name} has an official validation split, used as is: set data.val_size=null (got {val_size})"
            )
        return NBitImages(splits.train, bits), NBitImages(splits.val, bits)

    def dequantize_training_batch(self, batch: QuantizedBatch) -> Tensor:
        """float32 x_n + u of a training batch, u drawn on the batch's device (:func:`training_noise`):
        this rank's rows of the global batch's noise."""
        rank, world = self._rank_and_world()
        share = self.batch_size // world
        u = training_noise(self.seed, batch.step, self.batch_size, self.data_shape, batch.images.device)
        return dequantize(batch.images, u[rank * share : rank * share + len(batch)])

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Lightning's hook, after the batch reached the model's device: training batches are dequantized there."""
        return self.dequantize_training_batch(batch) if isinstance(batch, QuantizedBatch) else batch

    def preprocessing(self) -> list[Transform]:
        """[Rescale(bits), Logit(logit_alpha)] or [Rescale(bits), Centre()]: see the module docstring for BPD."""
        second: dict[Preprocessing, Callable[[], Transform]] = {
            Preprocessing.logit: lambda: Logit(self.logit_alpha),
            Preprocessing.logit_realnvp: lambda: Logit(self.logit_alpha, symmetric=False),
            Preprocessing.centre: Centre,
        }
        return [Rescale(self.bits), second[self.preprocessing_kind]()]
