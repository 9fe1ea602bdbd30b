"""Output directories of the follow-up tools (``funnelrun-sample``, ``funnelrun-eval``): always new."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional


def new_output_dir(run_dir: Path, out_dir: Optional[str] = None, kind: str = "samples") -> Path:
    """A new directory ``<out_dir or run_dir/kind>/<date>_<time with microseconds>/`` (e.g.
    ``samples/2026-11-22_10-15-00-123456``): never an earlier one."""
    root = Path(out_dir).expanduser() if out_dir is not None else Path(run_dir) / kind
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    for suffix in ("", *(f"-{n}" for n in range(1, 100))):
        path = root / (stamp + suffix)
        try:
            path.mkdir(parents=True, exist_ok=False)  # a new directory: never overwrites earlier outputs
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not make a new directory under {root}")
