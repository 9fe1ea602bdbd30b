"""Downsampled ImageNet 32x32 and 64x64 from the official npz files (Chrabaszcz, Loshchilov & Hutter 2017).

Layout: ``<root>/imagenet32/`` holds ``train_data_batch_1.npz`` .. ``train_data_batch_10.npz`` and
``val_data.npz``, the contents of ``Imagenet32_train_npz.zip`` and ``Imagenet32_val_npz.zip`` from
https://image-net.org/download-images (registration needed; unpack with ``unzip -j <zip> -d <root>/imagenet32``).
Likewise ``<root>/imagenet64/`` for ``Imagenet64_train_part1_npz.zip``, ``..._part2_npz.zip`` and
``Imagenet64_val_npz.zip``. Each npz holds ``data``, uint8 of shape (N, 3 * S * S): per row the red,
green and blue planes, each row-major (CHW order). The 50,000 validation images are the test split,
as in the papers that report BPD on these sets.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from funnelrun.data.image_files import ImageSplits, check_images, corrupt_file, missing_files

TRAIN_BATCHES = 10
SOURCE = (
    "https://image-net.org/download-images (Downsampled ImageNet {s}x{s}, npz format: Imagenet{s}_train*_npz.zip "
    "and Imagenet{s}_val_npz.zip, unpacked flat with `unzip -j <zip> -d <data_dir>/imagenet{s}`)"
)


def read_imagenet_npz(path: Path, size: int) -> np.ndarray:
    """The uint8 (N, 3, size, size) images of one npz file."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise corrupt_file(path, "a single .npy array, expected an npz archive with the array 'data'")
        with npz:
            if "data" not in npz.files:
                raise corrupt_file(path, f"no array 'data' (it holds {npz.files})")
            images = npz["data"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise corrupt_file(path, f"not a readable npz file ({type(exc).__name__}: {exc})") from exc
    return check_images(path, images, size, "'data'").reshape(-1, 3, size, size)


def load_imagenet(size: int, data_dir: str | Path) -> ImageSplits:
    """ImageNet ``size`` x ``size`` (32 or 64): the official training images and the 50,000 validation
    images as the test split, (N, 3, size, size) uint8."""
    folder = Path(data_dir).expanduser() / f"imagenet{size}"
    train_paths = [folder / f"train_data_batch_{k}.npz" for k in range(1, TRAIN_BATCHES + 1)]
    test_path = folder / "val_data.npz"
    if not all(p.is_file() for p in (*train_paths, test_path)):
        raise missing_files(
            f"ImageNet {size}x{size}", [*train_paths, test_path], SOURCE.format(s=size), downloadable=False
        )
    train = np.concatenate([read_imagenet_npz(p, size) for p in train_paths])
    return ImageSplits(train=train, test=read_imagenet_npz(test_path, size))
