"""CelebA (Liu et al. 2015) at 64x64, in torchvision's layout.

``<root>/celeba/img_align_celeba/*.jpg`` (the aligned and cropped 178x218 images) and
``<root>/celeba/list_eval_partition.txt`` (lines ``000001.jpg 0``: 0 train, 1 validation, 2 test,
the official splits: 162,770 / 19,867 / 19,962 images). Each image is centre-cropped to 148x148 and
resized to 64x64 (bilinear, PIL), as in Das et al. 2019, §4 "Pre-processing".
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from funnelrun.data.image_files import ImageSplits, Part, SourceFiles, corrupt_file, file_stats, missing_files
from funnelrun.errors import FunnelrunError

FOLDER = "celeba"
IMAGES = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
SOURCE = (
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images: img_align_celeba.zip, unpacked "
    "into <data_dir>/celeba/, and Eval/list_eval_partition.txt)"
)
CROP = 148
SIZE = 64
#: partition labels of list_eval_partition.txt
TRAIN, VAL, TEST = 0, 1, 2
#: images decoded per part when the cache is written (memory: 12 KiB each)
PART_IMAGES = 1024


def read_partition(path: Path) -> dict[int, list[str]]:
    """Image file names per split label, in file order."""
    splits: dict[int, list[str]] = {TRAIN: [], VAL: [], TEST: []}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise corrupt_file(path, f"line {number} is {line!r}, expected '<image>.jpg <0|1|2>'")
        splits[int(fields[1])].append(fields[0])
    empty = [label for label, names in splits.items() if not names]
    if empty:
        raise corrupt_file(path, f"no image in split(s) {empty} (0 train, 1 validation, 2 test)")
    return splits


def _not_found(path: Path) -> FunnelrunError:
    return FunnelrunError(f"{path} is listed in {PARTITION} but not found (is {IMAGES} completely unpacked?)")


def read_celeba_image(path: Path) -> np.ndarray:
    """One image, centre-cropped to 148x148 and resized to 64x64: uint8 (3, 64, 64)."""
    if not path.is_file():
        raise _not_found(path)
    image: Image.Image
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:  # missing, truncated or not an image
        raise corrupt_file(path, f"not a readable image ({type(exc).__name__}: {exc})") from exc
    width, height = image.size
    if min(width, height) < CROP:
        raise corrupt_file(path, f"{width}x{height} pixels, smaller than the {CROP}x{CROP} centre crop")
    left, top = round((width - CROP) / 2), round((height - CROP) / 2)  # torchvision's CenterCrop
    image = image.crop((left, top, left + CROP, top + CROP)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def read_celeba_images(paths: tuple[str, ...]) -> np.ndarray:
    """Images :func:`read_celeba_image` of ``paths``: uint8 (len(paths), 3, 64, 64)."""
    return np.stack([read_celeba_image(Path(path)) for path in paths])


def celeba_sources(data_dir: str | Path) -> SourceFiles:
    """The partition file and every JPEG it lists (each one's size and mtime key the cache); each
    split in parts of :data:`PART_IMAGES` images, decoded when read."""
    root = Path(data_dir).expanduser()
    folder = root / FOLDER
    partition = folder / PARTITION
    if not (partition.is_file() and (folder / IMAGES).is_dir()):
        raise missing_files("CelebA", [partition, folder / IMAGES / "000001.jpg"], SOURCE, downloadable=True)
    names = read_partition(partition)
    images = os.path.join(str(folder / IMAGES), "")
    paths = {label: [images + name for name in names[label]] for label in (TRAIN, VAL, TEST)}
    stats = file_stats(root, [partition, *(p for label in (TRAIN, VAL, TEST) for p in paths[label])], _not_found)

    def parts(label: int) -> tuple[Part, ...]:
        chunks = [tuple(paths[label][i : i + PART_IMAGES]) for i in range(0, len(paths[label]), PART_IMAGES)]
        return tuple(Part(partial(read_celeba_images, chunk), rows=len(chunk)) for chunk in chunks)

    return SourceFiles("celeba", root, (3, SIZE, SIZE), stats,
                       {"train": parts(TRAIN), "val": parts(VAL), "test": parts(TEST)})


def load_celeba(data_dir: str | Path) -> ImageSplits:
    """The official train / validation / test splits, (N, 3, 64, 64) uint8 (decodes every JPEG: minutes)."""
    return celeba_sources(data_dir).read()
