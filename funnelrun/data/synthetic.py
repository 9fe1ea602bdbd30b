"""Synthetic image sets written in the real on-disk formats, for benchmarks, tests and the GPU check.

Each writer takes the images (uint8 (N, C, H, W)) or a number of images to generate, and writes the
files the readers expect (:mod:`~funnelrun.data.cifar`, :mod:`~funnelrun.data.imagenet`,
:mod:`~funnelrun.data.celeba`) under ``root``: CIFAR-10 pickle batches, ImageNet npz files (ten
training parts and ``val_data.npz``), CelebA 178x218 JPEGs with ``list_eval_partition.txt``.
Generated sets are written part by part, so a set larger than memory can be written.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from funnelrun.data import celeba, cifar, imagenet

#: images generated at a time (memory: one part)
CHUNK = 16384


def random_images(n: int, shape: Sequence[int], seed: int) -> np.ndarray:
    """``n`` uint8 images of ``shape`` (uniform noise), a function of (n, shape, seed)."""
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _parts(images: np.ndarray | int, shape: Sequence[int], parts: int, seed: int) -> Iterator[np.ndarray]:
    """``parts`` consecutive pieces of ``images``, or of that many generated images."""
    if isinstance(images, np.ndarray):
        yield from np.array_split(images, parts)
        return
    bounds = np.linspace(0, images, parts + 1).astype(int)
    for k, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        yield random_images(int(stop - start), shape, seed * 1000 + k)


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_cifar10(root: Path, train: np.ndarray | int, test: np.ndarray | int, seed: int = 0) -> None:
    """``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``: pickled dicts with bytes keys, as
    the Python 2 originals."""
    shape = (3, cifar.SIZE, cifar.SIZE)
    folder = Path(root) / cifar.FOLDER
    names = [*cifar.TRAIN_FILES, cifar.TEST_FILE]
    pieces = [*_parts(train, shape, len(cifar.TRAIN_FILES), seed), *_parts(test, shape, 1, seed + 1)]
    for name, part in zip(names, pieces):
        entry = {b"batch_label": name.encode(), b"labels": [0] * len(part), b"data": part.reshape(len(part), -1)}
        _file(folder / name).write_bytes(pickle.dumps(entry, protocol=2))


def write_imagenet(root: Path, size: int, train: np.ndarray | int, test: np.ndarray | int, seed: int = 0) -> None:
    """``imagenet<size>/train_data_batch_1..10.npz`` and ``val_data.npz`` (``data``, ``labels``, as
    the official files; uncompressed, as they are)."""
    shape = (3, size, size)
    folder = Path(root) / f"imagenet{size}"
    names = [f"train_data_batch_{k}.npz" for k in range(1, imagenet.TRAIN_BATCHES + 1)] + ["val_data.npz"]
    pieces = [*_parts(train, shape, imagenet.TRAIN_BATCHES, seed), *_parts(test, shape, 1, seed + 1)]
    for name, part in zip(names, pieces):
        np.savez(_file(folder / name), data=part.reshape(len(part), -1), labels=np.ones(len(part), dtype=np.int64))


def face_like(rng: np.random.Generator) -> Image.Image:
    """A smooth random 178x218 RGB image (JPEG-compressible like a photo, unlike pixel noise)."""
    coarse = rng.integers(0, 256, (11, 9, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((178, 218), Image.Resampling.BICUBIC)


def write_celeba(root: Path, partition: Sequence[int], seed: int = 0, quality: int = 90) -> None:
    """``celeba/img_align_celeba/000001.jpg``.. (one :func:`face_like` image per entry of ``partition``,
    0 train, 1 validation, 2 test) and ``celeba/list_eval_partition.txt``."""
    folder = Path(root) / celeba.FOLDER
    images = _file(folder / celeba.IMAGES / "x").parent
    rng = np.random.default_rng(seed)
    lines = []
    for i, label in enumerate(partition, start=1):
        face_like(rng).save(images / f"{i:06d}.jpg", quality=quality)
        lines.append(f"{i:06d}.jpg {label}")
    (folder / celeba.PARTITION).write_text("\n".join(lines) + "\n")
