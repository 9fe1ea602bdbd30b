"""Logger factories named by the ``logger`` config group (``_target_``)."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from funnelrun.run_files import write_atomic
from funnelrun.training.wandb_mode import resolve_wandb_mode

WANDB_ID_FILE = "wandb_run_id"


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
    """W&B logger that never blocks on a server: offline unless set up and reachable.

    Runs are grouped by ``group`` (default: the experiment, else the run name ``<model>-<data>``),
    so the seeds of a sweep sit together. The W&B run id is kept in ``<run dir>/wandb_run_id``: a
    resumed or requeued run logs into the same W&B run."""
    resolved, reason = resolve_wandb_mode(mode)
    print(f"W&B: {resolved} ({reason})", flush=True)
    logger = WandbLogger(
        save_dir=str(save_dir),
        name=name,
        project=project,
        entity=entity,
        group=group or name,
        tags=[str(t) for t in tags or [] if t is not None],
        mode=resolved,
        config=run_config,
        id=wandb_run_id(Path(save_dir)),
        resume="allow",
    )
    # Lightning passes anonymous=None, which wandb >= 0.19 answers with "The anonymous setting has no
    # effect"; funnelrun never logs anonymously, so the key is left out
    logger._wandb_init.pop("anonymous", None)
    return logger


def wandb_run_id(run_dir: Path) -> str:
    """This run directory's W&B run id: made once (by rank 0) and read back on every resume."""
    path = run_dir / WANDB_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)  # W&B run ids: short, lowercase, alphanumeric
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # set on the function by Lightning
        write_atomic(path, run_id + "\n")
    return run_id
