"""What the image readers share: the splits they return, the source files of a cacheable set, and the
errors for missing or corrupt files.

Every reader (``idx``, ``cifar``, ``imagenet``, ``celeba``, ``digits``) returns 8-bit images as
uint8 arrays of shape (N, C, H, W) in the official splits; :mod:`funnelrun.data.images` reduces
them to n bits, carves the validation split and dequantizes. The readers of the large sets (CIFAR-10,
ImageNet, CelebA) also describe their files as :class:`SourceFiles`: the files with their sizes and
modification times (the key of the prepared-data cache, :mod:`funnelrun.data.cache`) and each split
as parts read one at a time, so that the cache is written without holding a whole split in memory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from funnelrun.errors import FunnelrunError, unreadable


@dataclass(frozen=True)
class ImageSplits:
    """uint8 (N, C, H, W) images of the official splits; ``val`` only where the set has an official one."""

    train: np.ndarray
    test: np.ndarray
    val: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Part:
    """Consecutive images of one split: ``read()`` gives them as uint8 (rows, C, H, W); ``rows`` is
    their number where it is known without reading them (None: only once read)."""

    read: Callable[[], np.ndarray]
    rows: Optional[int] = None


@dataclass(frozen=True)
class SourceFiles:
    """The files of an image set and how its splits are read from them.

    ``stats``: (path relative to ``root``, size in bytes, modification time in ns) of every file the
    splits are read from, the key of the cached arrays; ``splits``: split name (``train``, ``test``,
    and ``val`` where the set has an official one) -> its parts, in order; ``shape``: (C, H, W).
    """

    name: str
    root: Path
    shape: tuple[int, int, int]
    stats: tuple[tuple[str, int, int], ...]
    splits: dict[str, tuple[Part, ...]]

    def read(self) -> ImageSplits:
        """Every split read into memory (what the cache holds, without a cache)."""
        arrays = {split: np.concatenate([part.read() for part in parts]) for split, parts in self.splits.items()}
        return ImageSplits(train=arrays["train"], test=arrays["test"], val=arrays.get("val"))


def file_stats(
    root: Path, paths: Sequence[Path | str], missing: Callable[[Path], FunnelrunError]
) -> tuple[tuple[str, int, int], ...]:
    """(path relative to ``root``, size, mtime in ns) of each file; ``missing(path)`` is raised for one
    that is not there. (Strings are joined and cut as strings: pathlib costs more than the stat itself
    on the 200,000 files of CelebA.)"""
    prefix = os.path.join(str(root), "")
    stats = []
    for path in map(str, paths):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            raise missing(Path(path)) from None
        rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
        stats.append((rel, info.st_size, info.st_mtime_ns))
    return tuple(stats)


class MissingDataFiles(FunnelrunError):
    """Files of an image set are not under ``data.data_dir`` (``data.download=true`` may fetch them)."""


def missing_files(dataset: str, expected: Sequence[Path], source: str, downloadable: bool) -> MissingDataFiles:
    """The error for absent files: names every expected file (full path), where to get it, and how to point at it."""
    absent = [p for p in expected if not p.is_file()] or list(expected)
    fetch = (
        "or, on a machine with a network and a torchvision build that matches its torch (a CUDA machine; on "
        "CPU-only torch torchvision's wheel breaks lightning), set data.download=true: torchvision's downloader "
        "then fetches them" if downloadable else "(torchvision has no downloader for this set)"
    )
    return MissingDataFiles(
        f"{dataset} data: {absent[0].resolve()} not found. Expected "
        f"{', '.join(str(p.resolve()) for p in expected)}. They come from {source}. Point at the directory "
        f"that holds them with data.data_dir=<dir> (or the FUNNELRUN_DATA_DIR environment variable), {fetch}"
    )


def corrupt_file(path: Path, problem: str) -> FunnelrunError:
    """The error for a damaged file; inside an ``except`` for a PermissionError, says permission denied."""
    return unreadable(path) or FunnelrunError(
        f"cannot read {path}: {problem} (truncated or corrupt file? delete it and fetch it again)"
    )


def check_images(path: Path, images: object, size: int, what: str) -> np.ndarray:
    """``images`` as a uint8 (N, 3 * size * size) array from ``path``, else a corrupt-file error naming it."""
    width = 3 * size * size
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != width:
        got = (
            f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        )
        raise corrupt_file(path, f"{what}: expected a uint8 array of shape (N, {width}), got {got}")
    return images
