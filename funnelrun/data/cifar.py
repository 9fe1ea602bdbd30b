"""CIFAR-10 from its python pickle batches (Krizhevsky 2009), in torchvision's layout.

``<root>/cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (the 50,000 training images) and
``test_batch`` (10,000), as unpacked from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz.
Each is a pickled dict (written by Python 2: keys are bytes) whose ``b"data"`` is a uint8 array of
shape (N, 3072): per row the 1024 red, then green, then blue values, each plane row-major (CHW order).
"""
from __future__ import annotations

import pickle
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

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz, unpacked into data.data_dir)"
SIZE = 32


def read_cifar_batch(path: Path) -> np.ndarray:
    """The uint8 (N, 3, 32, 32) images of one pickle batch."""
    try:
        with path.open("rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except Exception as exc:  # unpickling fails in many ways: every one means "cannot read this file"
        raise corrupt_file(path, f"not a CIFAR-10 pickle batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(entry, dict) or not ({b"data", "data"} & entry.keys()):
        raise corrupt_file(path, "expected a pickled dict with the key b'data'")
    images = check_images(path, entry.get(b"data", entry.get("data")), SIZE, "b'data'")
    return images.reshape(-1, 3, SIZE, SIZE)


def cifar10_sources(data_dir: str | Path) -> SourceFiles:
    """The six pickle batches: five training parts, one test part (their sizes are known once read)."""
    root = Path(data_dir).expanduser()
    expected = [root / FOLDER / name for name in (*TRAIN_FILES, TEST_FILE)]
    if not all(p.is_file() for p in expected):
        raise missing_files("CIFAR-10", expected, SOURCE, downloadable=True)
    stats = file_stats(root, expected, lambda _: missing_files("CIFAR-10", expected, SOURCE, downloadable=True))
    parts = [Part(partial(read_cifar_batch, path)) for path in expected]
    return SourceFiles("cifar10", root, (3, SIZE, SIZE), stats, {"train": tuple(parts[:-1]), "test": (parts[-1],)})


def load_cifar10(data_dir: str | Path) -> ImageSplits:
    """The official 50,000 training and 10,000 test images, (N, 3, 32, 32) uint8."""
    return cifar10_sources(data_dir).read()
