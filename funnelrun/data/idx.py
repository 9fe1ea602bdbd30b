"""MNIST and Fashion-MNIST from their IDX files, in torchvision's layout.

IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header of int32s, magic 2051
(0x00000803: unsigned bytes, 3 dimensions), then N, rows, cols, then N * rows * cols pixel bytes,
row-major. Fashion-MNIST (Xiao et al. 2017) uses the same format and file names. torchvision keeps the
files as ``<root>/MNIST/raw/train-images-idx3-ubyte`` (and ``t10k-...``) next to their ``.gz``; either is read.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import cast

import numpy as np

from funnelrun.data.image_files import ImageSplits, corrupt_file, missing_files

IDX_IMAGES_MAGIC = 2051
HEADER_BYTES = 16
#: dataset name -> (folder under data_dir, where the files come from)
FOLDERS: dict[str, tuple[str, str]] = {
    "mnist": ("MNIST", "the MNIST site, http://yann.lecun.com/exdb/mnist/ (torchvision's mirror: "
              "https://ossci-datasets.s3.amazonaws.com/mnist/); each file may be kept gzipped (.gz)"),
    "fashion_mnist": ("FashionMNIST", "Zalando Research, https://github.com/zalandoresearch/fashion-mnist "
                      "(data/fashion/); each file may be kept gzipped (.gz)"),
}
SPLIT_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


def read_idx_images(path: Path) -> np.ndarray:
    """The uint8 images (N, rows, cols) of one IDX file (gzipped when its name ends in ``.gz``)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise corrupt_file(path, f"not a complete gzip file ({exc})") from exc
    if len(raw) < HEADER_BYTES:
        raise corrupt_file(path, f"{len(raw)} bytes, shorter than the {HEADER_BYTES}-byte IDX header")
    magic, n, rows, cols = struct.unpack(">iiii", raw[:HEADER_BYTES])
    if magic != IDX_IMAGES_MAGIC:
        hint = " (2049 is a label file)" if magic == 2049 else ""
        raise corrupt_file(path, f"magic number {magic}{hint}, expected {IDX_IMAGES_MAGIC} (IDX, uint8 images)")
    expected = HEADER_BYTES + n * rows * cols
    if n <= 0 or rows <= 0 or cols <= 0 or len(raw) != expected:
        raise corrupt_file(
            path, f"{len(raw)} bytes, expected {expected} for the {n} images of {rows}x{cols} its header declares"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=HEADER_BYTES).reshape(n, rows, cols)


def _split_path(folder: Path, name: str) -> Path | None:
    """The raw file if present (torchvision extracts it), else its .gz, else None."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def load_idx(name: str, data_dir: str | Path) -> ImageSplits:
    """``name`` in :data:`FOLDERS`: the official 60,000 training and 10,000 test images, (N, 1, 28, 28) uint8."""
    folder_name, source = FOLDERS[name]
    folder = Path(data_dir).expanduser() / folder_name / "raw"
    paths = {split: _split_path(folder, file) for split, file in SPLIT_FILES.items()}
    if None in paths.values():
        raise missing_files(folder_name, [folder / file for file in SPLIT_FILES.values()], source, downloadable=True)
    found = cast(dict[str, Path], paths)  # no None left
    train, test = (read_idx_images(found[split])[:, None] for split in ("train", "test"))
    if train.shape[1:] != test.shape[1:]:
        raise corrupt_file(found["test"],
 f"images of {test.shape[2:]}, but {paths['train']} has {train.shape[2:]}")
    return ImageSplits(train=train, test=test)
