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
from functools import partial
from pathlib import Path

import numpy as np

from funnelrun.data.image_files import (
    ImageSplits,
    Part,
    SourceFiles,
    check_images,
    corrupt_file,
    file_stats,
    missing_files,
)

TRAIN_BATCHES = 10
#: .npy format version -> numpy's reader of that header
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
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


def npz_rows(path: Path, size: int) -> int:
    """The number of images in one npz file, from the header of its ``data`` array alone (reads a few
    hundred bytes, not the images)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "data.npy" not in names:
                raise corrupt_file(path, f"no array 'data' (it holds {[n.removesuffix('.npy') for n in names]})")
            with archive.open("data.npy") as member:
                version = np.lib.format.read_magic(member)
                if version not in HEADER_READERS:
                    raise ValueError(f".npy format version {version}")
                shape, _, dtype = HEADER_READERS[version](member)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise corrupt_file(path, f"not a readable npz file ({type(exc).__name__}: {exc})") from exc
    if dtype != np.uint8 or len(shape) != 2 or shape[1] != 3 * size * size:
        raise corrupt_file(path, f"'data': expected a uint8 array of shape (N, {3 * size * size}), got {dtype} array "
                           f"of shape {shape}")
    return int(shape[0])


def imagenet_sources(size: int, data_dir: str | Path) -> SourceFiles:
    """The ten training npz files (parts of the train split) and ``val_data.npz`` (the test split);
    each file's image count is read from its header."""
    root = Path(data_dir).expanduser()
    folder = root / f"imagenet{size}"
    train_paths = [folder / f"train_data_batch_{k}.npz" for k in range(1, TRAIN_BATCHES + 1)]
    test_path = folder / "val_data.npz"
    paths = [*train_paths, test_path]
    missing = missing_files(f"ImageNet {size}x{size}", paths, SOURCE.format(s=size), downloadable=False)
    if not all(p.is_file() for p in paths):
        raise missing
    stats = file_stats(root, paths, lambda _: missing)
    parts = [Part(partial(read_imagenet_npz, path, size), rows=npz_rows(path, size)) for path in paths]
    return SourceFiles(f"imagenet{size}", root, (3, size, size), stats,
                       {"train": tuple(parts[:-1]), "test": (parts[-1],)})


def load_imagenet(size: int, data_dir: str | Path) -> ImageSplits:
    """ImageNet ``size`` x ``size`` (32 or 64): the official training images and the 50,000 validation
    images as the test split, (N, 3, size, size) uint8."""
    return imagenet_sources(size, data_dir).read()
