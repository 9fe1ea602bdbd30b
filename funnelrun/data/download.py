"""``data.download=true``: fetch an image set with torchvision's downloaders, into the layout the readers expect.

torchvision is an optional extra (its wheels for this torch are CUDA builds that break ``import
lightning`` on CPU-only machines), so it is imported only here, only when asked. Nothing is ever
downloaded unless ``data.download=true``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from funnelrun.errors import FunnelrunError

#: dataset name -> what builds the torchvision dataset(s) that download it under ``root``
DOWNLOADERS: dict[str, Callable[[Any, str], None]] = {
    "mnist": lambda datasets, root: datasets.MNIST(root, download=True),
    "fashion_mnist": lambda datasets, root: datasets.FashionMNIST(root, download=True),
    "cifar10": lambda datasets, root: datasets.CIFAR10(root, download=True),
    "celeba": lambda datasets, root: datasets.CelebA(root, split="all", download=True),
}


def download(name: str, data_dir: str | Path, missing: FunnelrunError) -> None:
    """Download set ``name`` into ``data_dir`` with torchvision; ``missing`` (the missing-files error,
    which says where the files come from) is raised with the reason when that is impossible."""
    if name not in DOWNLOADERS:
        raise FunnelrunError(f"{missing} -- data.download=true cannot help: torchvision has no downloader for {name}")
    try:
        from torchvision import datasets
    except ImportError as exc:
        raise FunnelrunError(
            f"{missing} -- data.download=true needs torchvision, which is not importable ({exc}): install it "
            f"where its wheel matches torch (pip install 'funnelrun[vision]' on a CUDA machine), or fetch the "
            f"files yourself from the source named above"
        ) from exc
    root = Path(data_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    try:
        DOWNLOADERS[name](datasets, str(root))
    except Exception as exc:  # network, checksum, disk, gdown quota (CelebA): all mean "get the files yourself"
        raise FunnelrunError(
            f"downloading {name} into {root} with torchvision failed ({type(exc).__name__}: {exc}). {missing}"
        ) from exc
