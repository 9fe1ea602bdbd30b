"""Image grids of samples and interpolations, shown as the n-bit images the model was trained on.

A model of n-bit images models y + u, y in {0, ..., 2^n - 1}, u ~ U[0, 1)^D (uniform
dequantization), so a sample x is shown as the image floor(x) clamped to [0, 2^n - 1], divided by
2^n - 1 for display.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: at least this many pixels across the saved grid, and across each image in it (small images are
#: enlarged, nearest neighbour): an 8x8 digit is drawn 64 pixels wide
MIN_WIDTH = 640
MIN_IMAGE_SIDE = 64


def to_unit_interval(images: Tensor, bits: int) -> Tensor:
    """(B, C, H, W) model samples -> n-bit integer images scaled to [0, 1]."""
    top = 2**bits - 1
    return torch.floor(images.detach().float().cpu()).clamp(0, top) / top


def save_image_grid(images: Tensor, bits: int, path: Path, ncol: int | None = None, pad: int = 1) -> Path:
    """Save ``images`` (B, C, H, W), C in {1, 3}, as one PNG grid of ``ncol`` columns (default: a
    square grid), ``pad`` white pixels between images."""
    from PIL import Image

    n, channels, h, w = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    pixels = (to_unit_interval(images, bits) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, channels), 255, dtype=np.uint8)
    for i, image in enumerate(pixels):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = image
    picture = Image.fromarray(grid[..., 0] if channels == 1 else grid)
    scale = max(1, math.ceil(MIN_WIDTH / picture.width), math.ceil(MIN_IMAGE_SIDE / min(h, w)))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path
