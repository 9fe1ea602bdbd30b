"""The Lightning Trainer of a run: its arguments from ``cfg.trainer``, the checkpoint callbacks, and
the precision rule (fp32 unless a model declares reduced precision safe, DESIGN.md)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from funnelrun.errors import FunnelrunError
from funnelrun.models.flow import Flow
from funnelrun.run_files import CHECKPOINT_DIR
from funnelrun.training.callbacks import CheckpointOnInterrupt, CheckpointOnSignal, FiniteModelCheckpoint
from funnelrun.training.progress import progress_callbacks, quiet_lightning

# Our DataModule resumes mid-epoch exactly (its state_dict carries the global step, and the
# batch of each step is a function of (seed, step)), which Lightning cannot see from the loader.
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")

#: Lightning precisions that keep the model in fp32 or fp64
FULL_PRECISION = {"32", "32-true", "64", "64-true"}


def check_precision(precision: str, model: Flow) -> None:
    """fp32 by default; mixed precision only where the model declares it safe (DESIGN.md)."""
    if precision not in FULL_PRECISION and not model.mixed_precision_safe:
        raise FunnelrunError(
            f"trainer.precision={precision} is refused: reduced precision breaks log-determinants (bf16 keeps "
            f"~3 significant digits, a CIFAR image's log-likelihood is ~7,000 nats), and no funnelrun model "
            f"declares it safe. Use trainer.precision=32-true (default) or 64-true"
        )


def trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``lightning.pytorch.Trainer`` arguments of ``cfg.trainer``."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(kwargs, dict)
    # the DataModule shards by rank itself, without DistributedSampler's padding (see data/base.py)
    kwargs["use_distributed_sampler"] = False
    # funnelrun prints its own one-line summary of the model (the progress callbacks)
    kwargs["enable_model_summary"] = False
    for key in ("limit_val_batches", "limit_test_batches"):
        if kwargs[key] is None:
            del kwargs[key]
    if SLURMEnvironment.detect():
        # submitit (hydra/launcher=slurm) requeues on its signal after CheckpointOnSignal has saved;
        # Lightning's own SLURM requeue on SIGUSR1 would race them
        kwargs["plugins"] = [SLURMEnvironment(auto_requeue=False)]
    return cast(dict[str, Any], kwargs)


def make_trainer(cfg: DictConfig, run_dir: Path, logger: Logger) -> tuple[pl.Trainer, FiniteModelCheckpoint]:
    """The Trainer of a run in ``run_dir`` and its checkpoint callback (``last.ckpt`` and the
    best-by-validation ``best-step<N>.ckpt`` in ``<run_dir>/checkpoints/``)."""
    checkpoints = run_dir / CHECKPOINT_DIR
    checkpointing = FiniteModelCheckpoint(
        dirpath=checkpoints,
        filename="best-step{step}",
        auto_insert_metric_name=False,
        monitor="val/nll",
        mode="min",
        save_top_k=1,
        save_last=True,
    )
    quiet_lightning()
    kwargs = trainer_kwargs(cfg)
    progress, kwargs["enable_progress_bar"] = progress_callbacks(
        float(cfg.get("log_every_s", 30.0)), kwargs["enable_progress_bar"], name=str(cfg.get("name", ""))
    )
    trainer = pl.Trainer(
        **kwargs,
        callbacks=[checkpointing, CheckpointOnInterrupt(checkpoints), CheckpointOnSignal(checkpoints), *progress],
        logger=logger,
        default_root_dir=str(run_dir),
    )
    return trainer, checkpointing
