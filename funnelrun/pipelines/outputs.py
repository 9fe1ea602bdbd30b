"""Output directories of the follow-up tools (``funnelrun-sample``, ``funnelrun-eval``): always new."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional


def new_output_dir(ckpt_path: Optional[str], out_dir: Optional[str], kind: str = "samples") -> Path:
    """A new directory ``<out_dir or checkpoint's run dir/kind>/<time>/<ns>``: never an earlier one."""
    if out_dir is not None:
        root = Path(out_dir)
    elif ckpt_path not in (None, "last"):
        root = Path(ckpt_path).expanduser().resolve().parent.parent / kind
    else:
        root = Path(kind)
    path = root / time.strftime("%Y-%m-%d_%H-%M-%S") / f"{time.time_ns() % 1_000_000_000:09d}"
    path.mkdir(parents=True, exist_ok=False)  # a new directory: never overwrites earlier outputs
    return path
