"""``funnelrun``'s job: build data and model from the config, train, test on the whole test split
with the best-by-validation weights, write the outputs."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sized, cast

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from funnelrun.builder import build_data, build_model, fingerprint
from funnelrun.checkpoint import check_compatible, read_checkpoint, resolve_ckpt_path
from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import RunInterrupted
from funnelrun.evaluation.importance import log_density
from funnelrun.models.flow import Flow
from funnelrun.run_files import CHECKPOINT_DIR, METRICS_FILE, write_json_atomic
from funnelrun.training.callbacks import StopSignal
from funnelrun.training.module import DensityEstimator
from funnelrun.training.run_dir import interrupted, prepare_run_dir
from funnelrun.training.trainer import check_precision, make_trainer
from funnelrun.validation import check_devices, validate_config


def train(
    cfg: DictConfig,
    run_dir: Path,
    model: Optional[Flow] = None,
    datamodule: Optional[FunnelDataModule] = None,
) -> dict[str, Any]:
    """Train, test on the whole test split with the best-by-validation weights, write outputs.

    ``model`` and ``datamodule`` default to those ``cfg`` builds (:mod:`funnelrun.builder`); a
    pipeline that prepares the model first (e.g. log-det masking's stage 2) passes them in."""
    validate_config(cfg)
    check_devices(cfg)
    ckpt_path = cfg.ckpt_path
    if ckpt_path is None and cfg.auto_resume and interrupted(run_dir):
        # a relaunch of a stopped job (SLURM requeue, or the same command again) continues it
        print(f"resuming the interrupted run in {run_dir} from its last checkpoint (auto_resume=true)", flush=True)
        ckpt_path = "last"
    resume_here = ckpt_path == "last"
    ckpt = resolve_ckpt_path(ckpt_path, run_dir) if ckpt_path is not None else None
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if datamodule is None:
        datamodule = build_data(cfg)
    if model is None:
        model = build_model(cfg, datamodule)
    check_precision(str(cfg.trainer.precision), model)
    stamp = fingerprint(cfg, datamodule)
    if ckpt is not None:
        check_compatible(ckpt, read_checkpoint(ckpt), stamp)
    # DDP ranks > 0 re-run this command inside the same run (``rank``: set on the function by Lightning)
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        prepare_run_dir(run_dir, cfg, resume_here=resume_here)

    module = DensityEstimator(
        model,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        bits=datamodule.bits,
        max_consecutive_nonfinite=cfg.optim.max_consecutive_nonfinite,
        compile=cfg.compile,
        is_samples=cfg.eval.is_samples,
        is_chunk_size=cfg.eval.is_chunk_size,
        stamp=stamp,
    )
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    # a partial, so Hydra does not try to instantiate the ``_target_`` entries inside run_config
    logger = instantiate(cfg.logger, _partial_=True)(save_dir=run_dir, name=cfg.name, run_config=config)
    trainer, checkpointing = make_trainer(cfg, run_dir, logger)
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
        raise RunInterrupted(name, trainer.global_step, run_dir / CHECKPOINT_DIR / "last.ckpt", run_dir) from exc
    train_seconds = time.perf_counter() - start

    best = checkpointing.best_model_path or None
    try:
        trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    except StopSignal as exc:  # Ctrl-C during the test: resuming goes on from the last checkpoint and tests
        raise RunInterrupted(str(exc), trainer.global_step, run_dir / CHECKPOINT_DIR / "last.ckpt", run_dir) from exc

    best_val = checkpointing.best_model_score
    metrics = {
        # the best validation NLL (the checkpoint tested): what hyperparameter sweeps minimise
        "val/nll": float(best_val) if best_val is not None else None,
        "test/nll": module.results["test/nll"],
        "test/bpd": module.results["test/bpd"],
        "test/examples": module.results["test/examples"],
        # the test split's size: more than test/examples when trainer.limit_test_batches cut it (debug=fast)
        "test/split_examples": len(cast(Sized, datamodule.test)) if datamodule.test is not None else None,
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
    data = cast(Any, datamodule).test_data[: cfg.eval.num_samples]  # 2-D data modules have test_data
    title = f"{cfg.name} (latent dim {model.latent_dim})"
    if not model.exact:
        title += f", density: importance-weighted estimate, {PLOT_IS_SAMPLES} samples"
    path = plot_density_2d(
        data, log_density(model, PLOT_IS_SAMPLES, cfg.eval.is_chunk_size), samples, cast(tuple, datamodule.bounds),
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
            path = save_image_grid(samples, cast(int, datamodule.bits), run_dir / f"samples_T{temperature}.png")
            paths.append(str(path))
    if isinstance(logger, WandbLogger):
        logger.log_image(key="samples", images=paths, caption=[f"T = {t}" for t in cfg.eval.temperatures])
    return paths


def summary_lines(metrics: dict[str, Any], run_dir: Path) -> list[str]:
    kind = "exact" if metrics["exact"] else (
        f"importance-weighted estimate ({metrics['is_samples']} samples), bound: {-metrics['test/nll_elbo']:.4f}"
    )
    examples, split = metrics.get("test/examples"), metrics.get("test/split_examples")
    part = ""
    if examples is not None and split is not None and examples < split:
        part = f"; over {examples:,} of the {split:,} test examples (trainer.limit_test_batches)"
    lines = [
        f"test log-likelihood: {-metrics['test/nll']:.4f} nats per example ({kind}; "
        f"test/nll = {metrics['test/nll']:.4f}{part})",
    ]
    if metrics["test/bpd"] is not None:
        lines.append(f"test BPD: {metrics['test/bpd']:.4f}")
    lines.append(
        f"latent dim {metrics['latent_dim']} of {metrics['data_dim']}, {metrics['num_params']:,} parameters, "
        f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s"
    )
    lines.append(f"outputs: {run_dir} (metrics.json, config.yaml, checkpoints/)")
    return lines


