"""Image sets as n-bit, uniformly dequantized (C, H, W) batches, with their preprocessing layers.

Readers (one per file format: :mod:`~funnelrun.data.idx`, :mod:`~funnelrun.data.cifar`,
:mod:`~funnelrun.data.imagenet`, :mod:`~funnelrun.data.celeba`, :mod:`~funnelrun.data.digits`) give the
official splits as 8-bit images. Here they are reduced to n bits, x_n = floor(x_8 / 2^(8-n)), and kept
in memory as uint8; each batch is float32 y = x_n + u, u ~ U[0, 1)^D (uniform dequantization) in the
integer scale [0, 2^n). The model starts with :meth:`ImageDataModule.preprocessing` (Rescale, then
Logit or Centre, :mod:`funnelrun.transforms.preprocess`), so

    BPD = -log p_model(y) / (D ln 2)

with every preprocessing Jacobian, Rescale's -D n ln 2 included, inside log p_model (funnels paper
Tables 2 and 4 report this quantity on the test split).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from funnelrun.data.base import FunnelDataModule
from funnelrun.data.celeba import load_celeba
from funnelrun.data.cifar import load_cifar10
from funnelrun.data.digits import load_digits
from funnelrun.data.download import download as torchvision_download
from funnelrun.data.idx import load_idx
from funnelrun.data.image_files import ImageSplits, MissingDataFiles
from funnelrun.data.imagenet import load_imagenet
from funnelrun.data.plane import derived_seed
from funnelrun.data.sampler import StepBatchSampler
from funnelrun.errors import FunnelrunError
from funnelrun.options import Preprocessing
from funnelrun.transforms.base import Transform
from funnelrun.transforms.preprocess import Centre, Logit, Rescale

READERS: dict[str, Callable[[Path], ImageSplits]] = {
    "mnist": partial(load_idx, "mnist"),
    "fashion_mnist": partial(load_idx, "fashion_mnist"),
    "cifar10": load_cifar10,
    "imagenet32": partial(load_imagenet, 32),
    "imagenet64": partial(load_imagenet, 64),
    "celeba": load_celeba,
    "digits": lambda data_dir: load_digits(),
}
#: seed of the validation subset carved from the training split (fixed: the same for every run)
VAL_SPLIT_SEED = 0
#: seed of the fixed evaluation noise (independent of ``data.seed``: a model's test BPD is one number)
EVAL_NOISE_SEED = 0


def reduce_bits(images: np.ndarray, bits: int) -> np.ndarray:
    """x_n = floor(x_8 / 2^(8 - n)) of uint8 images (a right shift)."""
    return images >> (8 - bits)


def carve_validation(train: np.ndarray, val_size: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(train without the validation images, ``val_size`` validation images): a fixed random subset of
    the training split (numpy's frozen ``RandomState(VAL_SPLIT_SEED)``), both in file order."""
    if not 1 <= val_size < len(train):
        raise FunnelrunError(
            f"data.val_size={val_size}: {name} has {len(train)} training images; "
            f"hold out between 1 and {len(train) - 1}"
        )
    order = np.random.RandomState(VAL_SPLIT_SEED).permutation(len(train))
    return train[np.sort(order[val_size:])], train[np.sort(order[:val_size])]


class DequantizedImages(Dataset):
    """uint8 n-bit images (N, C, H, W) served as float32 x_n + u, u ~ U[0, 1)^D.

    An item key is an ``index`` (evaluation: the noise is fixed by the index, so a test BPD is the
    same in every run and over any number of ranks) or ``(step, index)`` (training, from
    :class:`StepKeyedBatchSampler`: fresh noise every step, a function of (seed, step, index), so a
    resumed or data-parallel run draws exactly the noise of the uninterrupted single-process run).
    """

    def __init__(self, images: Tensor, seed: int):
        self.images = images
        self.seed = seed

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        if isinstance(key, tuple):
            step, index = key
            noise_seed = derived_seed(self.seed, "train", str(step), str(index))
        else:
            index = key
            noise_seed = derived_seed(EVAL_NOISE_SEED, "eval", str(index))
        x = self.images[index].float()
        u = torch.rand(x.shape, generator=torch.Generator().manual_seed(noise_seed))
        # in float32, x + u rounds up to x + 1 when u > 1 - 2^-17 (x = 255): keep every value in its bin
        return torch.minimum(x + u, torch.nextafter(x + 1, x))


class StepKeyedBatchSampler(StepBatchSampler):
    """:class:`StepBatchSampler` whose batches are ``[(step, index), ...]``, the keys of
    :class:`DequantizedImages`' training noise."""

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:  # type: ignore[override]
        for batch in super().__iter__():
            step = self._next_step - 1  # the global step of this batch
            yield [(step, index) for index in batch]


class ImageDataModule(FunnelDataModule):
    """Image set ``name`` (:data:`READERS`) read from ``data_dir`` in ``__init__``, reduced to ``bits`` bits.

    Splits: the official train and test splits; validation is the set's official one (CelebA, with
    ``val_size`` null) or ``val_size`` training images held out (a fixed subset, removed from train;
    never the test split). ``seed`` sets the training order and noise; the splits never depend on it.
    Never downloads, unless ``download`` is true (torchvision's downloaders, when importable).
    """

    batch_sampler_class = StepKeyedBatchSampler

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
    ):
        if name not in READERS:
            raise FunnelrunError(f"unknown image dataset {name!r}; valid names: {sorted(READERS)}")
        if not 1 <= bits <= 8:
            raise FunnelrunError(f"data.bits={bits} must be between 1 and 8")
        if not 0 < logit_alpha < 0.5:
            raise FunnelrunError(f"data.logit_alpha={logit_alpha} must be in (0, 0.5)")
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, num_workers=num_workers)
        self.name = name
        self.bits = bits
        self.preprocessing_kind = Preprocessing(preprocessing)
        self.logit_alpha = logit_alpha
        splits = self._read(name, Path(data_dir), download)
        train, val = self._train_and_val(name, splits, val_size)
        self.train_data, self.val_data, self.test_data = (
            torch.from_numpy(reduce_bits(x, bits)) for x in (train, val, splits.test)
        )
        self.data_shape = tuple(self.train_data.shape[1:])
        self.train, self.val, self.test = (
            DequantizedImages(x, seed) for x in (self.train_data, self.val_data, self.test_data)
        )

    @staticmethod
    def _read(name: str, data_dir: Path, download: bool) -> ImageSplits:
        try:
            return READERS[name](data_dir)
        except MissingDataFiles as missing:
            if not download:
                raise
            torchvision_download(name, data_dir, missing)
            return READERS[name](data_dir)

    @staticmethod
    def _train_and_val(name: str, splits: ImageSplits, val_size: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
        if splits.val is None:
            if val_size is None:
                raise FunnelrunError(
                    f"{name} has no official validation split: set data.val_size=<training images to hold out>"
                )
            return carve_validation(splits.train, val_size, name)
        if val_size is not None:
            raise FunnelrunError(
                f"{name} has an official validation split, used as is: set data.val_size=null (got {val_size})"
            )
        return splits.train, splits.val

    def preprocessing(self) -> list[Transform]:
        """[Rescale(bits), Logit(logit_alpha)] or [Rescale(bits), Centre()]: see the module docstring for BPD."""
        second = Logit(self.logit_alpha) if self.preprocessing_kind is Preprocessing.logit else Centre()
        return [Rescale(self.bits), second]
