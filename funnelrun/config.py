"""Structured-config schemas: a misspelt key or a wrongly typed value fails with Hydra's message
naming it. Every YAML option in ``funnelrun/conf/<group>/`` extends one of these schemas
(``defaults: [/schema/<group>/<name>@_here_]``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from funnelrun.models.f_nsf import ConditionalKind
from funnelrun.models.nsf import LinearKind, SplineKind


# -- data ---------------------------------------------------------------------------------------
@dataclass
class PlaneDataConfig:
    _target_: str = "funnelrun.data.plane.PlaneDataModule"
    name: str = "four_circles"
    n_train: int = 50_000
    n_val: int = 10_000
    n_test: int = 10_000
    batch_size: int = 256
    eval_batch_size: int = 4096
    #: seed of the generated data (fixed across model seeds, so every run sees the same test split)
    seed: int = 1234
    num_workers: int = 0
    #: where file-based data lives (unused by generated plane sets)
    data_dir: Optional[str] = None


# -- models -------------------------------------------------------------------------------------
@dataclass
class NSFConfig:
    _target_: str = "funnelrun.models.nsf.build_nsf"
    num_steps: int = 10
    transform: SplineKind = SplineKind.coupling
    hidden_features: int = 256
    num_blocks: int = 2
    num_bins: int = 8
    tail_bound: float = 3.0
    dropout: float = 0.0
    batch_norm: bool = False
    linear: LinearKind = LinearKind.lu
    latent_dim: Optional[int] = None


@dataclass
class FNSFConfig(NSFConfig):
    _target_: str = "funnelrun.models.f_nsf.build_f_nsf"
    dim_reduction: Optional[int] = None
    funnel_level: int = 0
    conditional: ConditionalKind = ConditionalKind.flow
    conditional_steps: Optional[int] = None
    conditional_hidden_features: Optional[int] = None
    conditional_bins: Optional[int] = None


# -- trainer, logger, optimiser -----------------------------------------------------------------
@dataclass
class TrainerConfig:
    """Keyword arguments of ``lightning.pytorch.Trainer`` that funnelrun exposes."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    max_steps: int = 3000
    val_check_interval: int = 500
    check_val_every_n_epoch: Optional[int] = None
    gradient_clip_val: float = 5.0
    gradient_clip_algorithm: str = "norm"
    precision: str = "32-true"
    log_every_n_steps: int = 50
    limit_val_batches: Optional[float] = None
    limit_test_batches: Optional[float] = None
    #: null: a progress bar on interactive terminals only
    enable_progress_bar: Optional[bool] = None
    deterministic: bool = False


@dataclass
class LoggerConfig:
    _target_: str = "funnelrun.training.loggers.csv_logger"


@dataclass
class WandbLoggerConfig(LoggerConfig):
    _target_: str = "funnelrun.training.loggers.wandb_logger"
    project: str = "funnelrun"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    #: null: online only when W&B is set up and reachable, else offline (sync later)
    mode: Optional[str] = None


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class EvalConfig:
    #: save the 2-D density/sample figure (2-D data only)
    plot: bool = True
    #: samples drawn for figures
    num_samples: int = 10_000
    #: grid points per axis for the density figure / integral
    grid_points: int = 200


@dataclass
class FunnelrunConfig:
    data: Any = MISSING
    model: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = MISSING
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    #: null (train from scratch), "last" (resume this run directory), or a path to a .ckpt
    ckpt_path: Optional[str] = None
    #: a short run name (W&B run name, report rows)
    name: str = "${hydra:runtime.choices.model}-${hydra:runtime.choices.data}"


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="funnelrun_schema", node=FunnelrunConfig)
    cs.store(group="schema/data", name="plane", node=PlaneDataConfig)
    cs.store(group="schema/model", name="nsf", node=NSFConfig)
    cs.store(group="schema/model", name="f_nsf", node=FNSFConfig)
    cs.store(group="schema/trainer", name="trainer", node=TrainerConfig)
    cs.store(group="schema/logger", name="csv", node=LoggerConfig)
    cs.store(group="schema/logger", name="wandb", node=WandbLoggerConfig)
