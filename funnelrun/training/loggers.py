"""Logger factories named by the ``logger`` config group (``_target_``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.loggers import CSVLogger, WandbLogger

from funnelrun.training.wandb_mode import resolve_wandb_mode


def csv_logger(save_dir: Path, name: str, run_config: dict[str, Any]) -> CSVLogger:
    """Metrics in ``<run dir>/csv/version_<N>/metrics.csv``: every process (a resume included)
    writes a new version, so resuming never rewrites the metrics logged before it."""
    return CSVLogger(save_dir=str(save_dir), name="csv")


def wandb_logger(
    save_dir: Path,
    name: str,
    run_config: dict[str, Any],
    project: str = "funnelrun",
    entity: Optional[str] = None,
    group: Optional[str] = None,
    tags: Optional[list[str]] = None,
    mode: Optional[str] = None,
) -> WandbLogger:
    """W&B logger that never blocks on a server: offline unless set up and reachable."""
    resolved, reason = resolve_wandb_mode(mode)
    print(f"W&B: {resolved} ({reason})", flush=True)
    logger = WandbLogger(
        save_dir=str(save_dir),
        name=name,
        project=project,
        entity=entity,
        group=group,
        tags=list(tags or []),
        mode=resolved,
        config=run_config,
    )
    return logger
