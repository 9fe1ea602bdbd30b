"""The Lightning Trainer of a run: its arguments from ``cfg.trainer``, the checkpoint callbacks, and
the precision rule (fp32 unless a model declares reduced precision safe, DESIGN.md).

``trainer.precision=bf16-mixed`` (CPU and CUDA) and ``16-mixed`` (CUDA) mean: the conditioner nets
run in that precision during training steps, and nothing else does
(:func:`funnelrun.transforms.nets.conditioner_precision`, entered by the LightningModule). Lightning's
own mixed-precision plugin would autocast the whole forward (LU layers, log-dets, the data path), so
Lightning runs at 32-true for bf16-mixed (autocast is all its plugin does there), and for 16-mixed
it is given :class:`ConditionerMixedPrecision`: Lightning's plugin with its autocast switched off,
kept for the GradScaler (loss scaling, unscaling before clipping, skipping overflowed steps, its
state in checkpoints). The GradScaler's overflowed steps count as non-finite steps
(``optim.max_consecutive_nonfinite``), and 16-mixed uses the unfused Adam, whose gradients
Lightning can unscale before clipping.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, cast

import lightning.pytorch as pl
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.plugins.precision import MixedPrecision
from omegaconf import DictConfig, OmegaConf

from funnelrun.errors import FunnelrunError
from funnelrun.models.flow import Flow
from funnelrun.run_files import CHECKPOINT_DIR
from funnelrun.training.callbacks import CheckpointOnInterrupt, CheckpointOnSignal, FiniteModelCheckpoint
from funnelrun.training.checkpoint_io import AtomicCheckpointIO
from funnelrun.training.progress import progress_callbacks, quiet_lightning

# Our DataModule resumes mid-epoch exactly (its state_dict carries the global step, and the
# batch of each step is a function of (seed, step)), which Lightning cannot see from the loader.
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")

#: Lightning precisions that keep the model in fp32 or fp64
FULL_PRECISION = {"32", "32-true", "64", "64-true"}
#: the model families whose conditioners may train in reduced precision (on vector data), by the
#: test that their log p moves by at most 1e-3 nats per dimension (tests/training/test_precision.py)
MIXED_PRECISION_MODELS = "model=nsf and model=f_nsf (coupling or autoregressive) on vector data"


def check_precision(precision: str, model: Flow) -> None:
    """fp32 by default; mixed precision (conditioners only) where the model declares it safe."""
    if precision not in FULL_PRECISION and not model.mixed_precision_safe:
        raise FunnelrunError(
            f"trainer.precision={precision} is refused for this model: reduced precision is tested safe "
            f"(log p within 1e-3 nats per dimension of fp32, conditioners only) for {MIXED_PRECISION_MODELS}. "
            "Use trainer.precision=32-true (default) here"
        )


class ConditionerMixedPrecision(MixedPrecision):
    """Lightning's mixed-precision plugin without its autocast: the forward stays fp32 and the
    conditioners alone enter ``precision`` (module docstring); 16-mixed keeps the GradScaler."""

    @contextmanager
    def forward_context(self) -> Iterator[None]:
        yield


def precision_plugin(precision: str, accelerator: str) -> Optional[ConditionerMixedPrecision]:
    """The plugin of 16-mixed (its GradScaler), None otherwise (Lightning's own ``precision``)."""
    if precision != "16-mixed":
        return None
    device = "cuda" if accelerator.lower() in ("gpu", "cuda") else "cpu"
    return ConditionerMixedPrecision("16-mixed", device)


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
    # funnelrun's own: TF32 in the conditioners (the LightningModule's conditioner_precision)
    kwargs.pop("tf32", None)
    # checkpoints written atomically in the run directory's own file system, read weights-only
    plugins: list[Any] = [AtomicCheckpointIO()]
    precision = str(kwargs["precision"])
    plugin = precision_plugin(precision, str(kwargs["accelerator"]))
    if plugin is not None:
        del kwargs["precision"]
        plugins.append(plugin)
    elif precision == "bf16-mixed":  # the module's conditioner_precision does it all
        kwargs["precision"] = "32-true"
    if SLURMEnvironment.detect():
        # submitit (hydra/launcher=slurm) requeues on its signal after CheckpointOnSignal has saved;
        # Lightning's own SLURM requeue on SIGUSR1 would race them
        plugins.append(SLURMEnvironment(auto_requeue=False))
    if plugins:
        kwargs["plugins"] = plugins
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
