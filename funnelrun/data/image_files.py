"""What the image readers share: the splits they return and the errors for missing or corrupt files.

Every reader (``idx``, ``cifar``, ``imagenet``, ``celeba``, ``digits``) returns 8-bit images as
uint8 arrays of shape (N, C, H, W) in the official splits; :mod:`funnelrun.data.images` reduces
them to n bits, carves the validation split and dequantizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from funnelrun.errors import FunnelrunError


@dataclass(frozen=True)
class ImageSplits:
    """uint8 (N, C, H, W) images of the official splits; ``val`` only where the set has an official one."""

    train: np.ndarray
    test: np.ndarray
    val: Optional[np.ndarray] = None


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
    return FunnelrunError(f"cannot read {path}: {problem} (truncated or corrupt file? delete it and fetch it again)")


def check_images(path: Path, images: object, size: int, what: str) -> np.ndarray:
    """``images`` as a uint8 (N, 3 * size * size) array from ``path``, else a corrupt-file error naming it."""
    width = 3 * size * size
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != width:
        got = (
            f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        )
        raise corrupt_file(path, f"{what}: expected a uint8 array of shape (N, {width}), got {got}")
    return images
