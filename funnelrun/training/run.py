"""``funnelrun``'s job: build data and model from the config, train, test, write the outputs."""
from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError, RunInterrupted
from funnelrun.evaluation.importance import log_density
from funnelrun.models.flow import Flow
from funnelrun.training.callbacks import (
    CheckpointOnInterrupt,
    CheckpointOnSignal,
    FiniteModelCheckpoint,
    StopSignal,
)
from funnelrun.training.checkpoint import FINGERPRINT_KEY, check_compatible, read_checkpoint, resolve_ckpt_path
from funnelrun.training.module import DensityEstimator
from funnelrun.training.run_dir import (
    CHECKPOINT_DIR,
    METRICS_FILE,
    interrupted,
    prepare_run_dir,
    write_json_atomic,
)
from funnelrun.validation import validate_config


def build_data(cfg: DictConfig) -> FunnelDataModule:
    # data.table7 holds the image models' defaults (read by the model configs), not a data argument
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.pop("table7", None)
    return instantiate(data)


def build_model(cfg: DictConfig, datamodule: FunnelDataModule) -> Flow:
    """The configured model, starting with the data's preprocessing layers (e.g. image rescale +
    logit), so their Jacobian is in every log-likelihood and BPD. They preserve the dimension, so
    ``latent_dim`` is unchanged."""
    model = instantiate(cfg.model, data_shape=datamodule.data_shape)
    for position, layer in enumerate(datamodule.preprocessing()):
        model.transform.transforms.insert(position, layer)
    return model


def fingerprint(cfg: DictConfig, datamodule: FunnelDataModule) -> dict[str, Any]:
    """What a checkpoint must match to be loaded into this run."""
    stamp = {
        "model": OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True),
        "data_shape": list(datamodule.data_shape),
    }
    if datamodule.bits is not None:
        # images: the preprocessing layers are part of the model, though they hold no weights
        stamp["bits"] = datamodule.bits
        stamp["preprocessing"] = [repr(layer) for layer in datamodule.preprocessing()]
    return stamp


class _FingerprintedModule(DensityEstimator):
    """DensityEstimator that stamps its checkpoints with the model config and data shape."""

    def __init__(self, model: Flow, stamp: dict[str, Any], **kwargs: Any):
        super().__init__(model, **kwargs)
        self.stamp = stamp

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[FINGERPRINT_KEY] = self.stamp


def _trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    # the DataModule shards by rank itself, without DistributedSampler's padding (see data/base.py)
    kwargs["use_distributed_sampler"] = False
    if kwargs["enable_progress_bar"] is None:
        kwargs["enable_progress_bar"] = sys.stderr.isatty()
    for key in ("limit_val_batches", "limit_test_batches"):
        if kwargs[key] is None:
            del kwargs[key]
    if SLURMEnvironment.detect():
        # submitit (hydra/launcher=slurm) requeues on its signal after CheckpointOnSignal has saved;
        # Lightning's own SLURM requeue on SIGUSR1 would race them
        kwargs["plugins"] = [SLURMEnvironment(auto_requeue=False)]
    return kwargs


# Our DataModule resumes mid-epoch exactly (its state_dict carries the global step, and the
# batch of each step is a function of (seed, step)), which Lightning cannot see from the loader.
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")


#: Lightning precisions that keep the model in fp32 or fp64
FULL_PRECISION = {"32", "32-true", "64", "64-true"}


def _check_precision(precision: str, model: Flow) -> None:
    """fp32 by default; mixed precision only where the model declares it safe (DESIGN.md)."""
    if precision not in FULL_PRECISION and not model.mixed_precision_safe:
        raise FunnelrunError(
            f"trainer.precision={precision} is refused: reduced precision breaks log-determinants (bf16 keeps "
            f"~3 significant digits, a CIFAR image's log-likelihood is ~7,000 nats), and no funnelrun model "
            f"declares it safe. Use trainer.precision=32-true (default) or 64-true"
        )


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train, test on the whole test split with the best-by-validation weights, write outputs."""
    validate_config(cfg)
    ckpt_path = cfg.ckpt_path
    if ckpt_path is None and cfg.auto_resume and interrupted(run_dir):
        # a relaunch of a stopped job (SLURM requeue, or the same command again) continues it
        print(f"resuming the interrupted run in {run_dir} from its last checkpoint (auto_resume=true)", flush=True)
        ckpt_path = "last"
    resume_here = ckpt_path == "last"
    ckpt = resolve_ckpt_path(ckpt_path, run_dir) if ckpt_path is not None else None
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule)
    _check_precision(str(cfg.trainer.precision), model)
    stamp = fingerprint(cfg, datamodule)
    if ckpt is not None:
        check_compatible(ckpt, read_checkpoint(ckpt), stamp)
    if rank_zero_only.rank == 0:  # DDP ranks > 0 re-run this command inside the same run
        prepare_run_dir(run_dir, cfg, resume_here=resume_here)
    if "stage1_steps" in cfg.model and ckpt is None:
        # RealNVP with log-det masking (Das et al. 2019, Sec. 3.2.2): stage 1 chooses this model's
        # masks; a resumed stage 2 gets them from its checkpoint (they are buffers)
        from funnelrun.training.ldmask import fit_masks

        fit_masks(cfg, run_dir, model, datamodule)

    module = _FingerprintedModule(
        model,
        stamp,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        bits=datamodule.bits,
        max_consecutive_nonfinite=cfg.optim.max_consecutive_nonfinite,
        compile=cfg.compile,
        is_samples=cfg.eval.is_samples,
        is_chunk_size=cfg.eval.is_chunk_size,
    )
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    # a partial, so Hydra does not try to instantiate the ``_target_`` entries inside run_config
    logger = instantiate(cfg.logger, _partial_=True)(save_dir=run_dir, name=cfg.name, run_config=config)
    checkpointing = FiniteModelCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="best-step{step}",
        auto_insert_metric_name=False,
        monitor="val/nll",
        mode="min",
        save_top_k=1,
        save_last=True,
    )
    trainer = pl.Trainer(
        **_trainer_kwargs(cfg),
        callbacks=[
            checkpointing,
            CheckpointOnInterrupt(run_dir / CHECKPOINT_DIR),
            CheckpointOnSignal(run_dir / CHECKPOINT_DIR),
        ],
        logger=logger,
        default_root_dir=str(run_dir),
    )

    try:
        return _fit_and_test(cfg, run_dir, trainer, module, datamodule, checkpointing, ckpt)
    finally:
        if isinstance(logger, WandbLogger):
            # one W&B run per funnelrun run, also when Hydra runs several jobs in one process
            import wandb

            wandb.finish()


def _fit_and_test(
    cfg: DictConfig,
    run_dir: Path,
    trainer: pl.Trainer,
    module: DensityEstimator,
    datamodule: FunnelDataModule,
    checkpointing: ModelCheckpoint,
    ckpt: Optional[Path],
) -> dict[str, Any]:
    model, logger = module.model, trainer.logger
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    except (SIGTERMException, StopSignal) as exc:
        name = str(exc) if isinstance(exc, StopSignal) else "SIGTERM"
        raise RunInterrupted(
            f"stopped by {name} at step {trainer.global_step}; its state is saved in "
            f"{run_dir / CHECKPOINT_DIR / 'last.ckpt'}. Resume by running the same command with "
            f"hydra.run.dir={run_dir} (auto_resume), or add ckpt_path=last"
        ) from exc
    train_seconds = time.perf_counter() - start

    best = checkpointing.best_model_path or None
    trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)

    best_val = checkpointing.best_model_score
    metrics = {
        # the best validation NLL (the checkpoint tested): what hyperparameter sweeps minimise
        "val/nll": float(best_val) if best_val is not None else None,
        "test/nll": module.results["test/nll"],
        "test/bpd": module.results["test/bpd"],
        "test/examples": module.results["test/examples"],
        # a bound (exact false): test/nll is the importance-weighted estimate; null for exact models
        "test/nll_elbo": module.results.get("test/nll_elbo"),
        "is_samples": None if model.exact else cfg.eval.is_samples,
        "latent_dim": model.latent_dim,
        "data_dim": model.data_dim,
        "num_params": sum(p.numel() for p in model.parameters()),
        "exact": model.exact,
        "steps": trainer.global_step,
        "train_seconds": train_seconds,
        # wall time of the first compiled step (included in train_seconds); null when not compiled
        "compile_seconds": module.train_log_prob.compile_seconds,
        "best_checkpoint": best,
        "seed": cfg.seed,
    }
    if not trainer.is_global_zero:
        return metrics
    if datamodule.data_dim == 2 and cfg.eval.plot:
        metrics["density_plot"] = str(_plot_2d(cfg, model, datamodule, run_dir, logger))
    if len(datamodule.data_shape) == 3 and cfg.eval.plot:
        metrics["sample_grids"] = _sample_grids(cfg, model, datamodule, run_dir, logger)
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            print(f"warning: {key} is {value}", file=sys.stderr)
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    if isinstance(logger, WandbLogger):
        logger.experiment.summary.update({k: v for k, v in metrics.items() if v is not None})
    return metrics


#: importance samples per grid point in the density figure of a model that only gives a bound
PLOT_IS_SAMPLES = 64


def _plot_2d(cfg: DictConfig, model: Flow, datamodule: FunnelDataModule, run_dir: Path, logger: Any) -> Path:
    from funnelrun.training.plots import plot_density_2d

    model.eval()
    with torch.no_grad():
        samples = model.sample(cfg.eval.num_samples)
    data = datamodule.test_data[: cfg.eval.num_samples]
    title = f"{cfg.name} (latent dim {model.latent_dim})"
    if not model.exact:
        title += f", density: importance-weighted estimate, {PLOT_IS_SAMPLES} samples"
    path = plot_density_2d(
        data, log_density(model, PLOT_IS_SAMPLES, cfg.eval.is_chunk_size), samples, datamodule.bounds,
        run_dir / "density.png", points_per_axis=cfg.eval.grid_points, title=title,
    )
    if isinstance(logger, WandbLogger):
        logger.log_image(key="density", images=[str(path)])
    return path


def _sample_grids(cfg: DictConfig, model: Flow, datamodule: FunnelDataModule, run_dir: Path, logger: Any) -> list[str]:
    """An 8x8 grid of model samples per temperature in ``eval.temperatures``, as n-bit images
    (``samples_T<T>.png``), logged to W&B as one captioned panel."""
    from funnelrun.evaluation.image_grid import save_image_grid

    model.eval()
    paths = []
    with torch.no_grad():
        for temperature in cfg.eval.temperatures:
            samples = model.sample(64, temperature=float(temperature))
            paths.append(str(save_image_grid(samples, datamodule.bits, run_dir / f"samples_T{temperature}.png")))
    if isinstance(logger, WandbLogger):
        logger.log_image(key="samples", images=paths, caption=[f"T = {t}" for t in cfg.eval.temperatures])
    return paths


def summary_lines(metrics: dict[str, Any], run_dir: Path) -> list[str]:
    kind = "exact" if metrics["exact"] else (
        f"importance-weighted estimate ({metrics['is_samples']} samples), bound: {-metrics['test/nll_elbo']:.4f}"
    )
    lines = [
        f"test log-likelihood: {-metrics['test/nll']:.4f} nats per example ({kind}; "
        f"test/nll = {metrics['test/nll']:.4f})",
    ]
    if metrics["test/bpd"] is not None:
        lines.append(f"test BPD: {metrics['test/bpd']:.4f}")
    lines.append(
        f"latent dim {metrics['latent_dim']} of {metrics['data_dim']}, {metrics['num_params']:,} parameters, "
        f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s"
    )
    lines.append(f"outputs: {run_dir} (metrics.json, config.yaml, checkpoints/)")
    return lines


