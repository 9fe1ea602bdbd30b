"""funnelrun from Python: compose a config, build a model, load a finished run.

    >>> import funnelrun
    >>> cfg = funnelrun.compose(["model=nsf", "data=four_circles", "model.hidden_features=8"])
    >>> model, data = funnelrun.build(cfg)
    >>> model.latent_dim, model.exact
    (2, True)

A finished run (a directory ``outputs/<date>/<time>/`` or one of its checkpoints) loads back as a
:class:`Run`: ``run = funnelrun.load_run("outputs/...")``; then ``run.model.log_prob(x)``,
``run.model.sample(16, temperature=0.75)``, and for exact models ``run.model.encode(x)`` and
``run.model.decode(z)`` (README, section Python).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union, cast

from omegaconf import DictConfig, OmegaConf

from funnelrun.builder import build as _build
from funnelrun.config import FunnelrunConfig, compose_config
from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.models.flow import Flow
from funnelrun.run_files import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE


def compose(overrides: Optional[list[str]] = None) -> DictConfig:
    """The config ``funnelrun <overrides>`` would train, with the same schemas and errors: a
    misspelt key or option raises :class:`~funnelrun.errors.FunnelrunError` naming it.

    Example:
        >>> compose(["model=f_nsf", "model.latent_dim=1"]).model.latent_dim
        1
    """
    return compose_config(list(overrides or []))


def build(cfg: DictConfig) -> tuple[Flow, FunnelDataModule]:
    """The untrained model and the data module of ``cfg`` (as ``funnelrun`` builds them: the data's
    preprocessing layers first, weights initialised from ``cfg.seed``). The data is read when you
    call ``datamodule.setup()``.

    Example:
        >>> model, data = build(compose(["model=f_nsf", "model.hidden_features=8"]))
        >>> model.data_dim, model.latent_dim
        (2, 1)
    """
    return _build(cfg)


@dataclass
class Run:
    """A finished (or stopped) run loaded back: its model with the checkpoint's weights (eval mode),
    resolved config, data module, the checkpoint file and ``metrics.json`` (None if the run never
    finished)."""

    path: Path
    config: DictConfig
    model: Flow
    datamodule: FunnelDataModule
    checkpoint: Path
    metrics: Optional[dict[str, Any]]


def _best_checkpoint(run_dir: Path) -> Path:
    """The run's best-by-validation checkpoint, else its last one."""
    best = sorted((run_dir / CHECKPOINT_DIR).glob("best-step*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    last = run_dir / CHECKPOINT_DIR / "last.ckpt"
    if last.is_file():
        return last
    raise FunnelrunError(f"{run_dir} holds no checkpoint ({CHECKPOINT_DIR}/best-step*.ckpt or last.ckpt)")


def locate_run(path: Union[str, Path], checkpoint: str = "best") -> tuple[Path, Path]:
    """(run directory, checkpoint file) of ``path``: a run directory (its ``checkpoint``: ``"best"``, the
    best-by-validation one, else ``last``; ``"last"``; or a file name in ``<run>/checkpoints/``) or a
    checkpoint file (``checkpoint`` ignored)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path.parent.parent, path
    if not path.is_dir():
        raise FunnelrunError(f"{path} is neither a run directory nor a checkpoint file")
    ckpt = _best_checkpoint(path) if checkpoint == "best" else path / CHECKPOINT_DIR / (
        "last.ckpt" if checkpoint == "last" else checkpoint)
    if not ckpt.is_file():
        raise FunnelrunError(f"no checkpoint {ckpt}")
    return path, ckpt


def read_run_config(run_dir: Path) -> DictConfig:
    """The resolved config a run saved (``<run>/config.yaml``); sections an older funnelrun did not
    write (``eval``, ``sample``, ``log_every_s``) take today's defaults."""
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise FunnelrunError(
            f"{config_file} is missing: the model is rebuilt from the run's config.yaml, which "
            f"funnelrun writes beside {CHECKPOINT_DIR}/; pass the run directory the checkpoint came from"
        )
    cfg = OmegaConf.load(config_file)
    assert isinstance(cfg, DictConfig)
    defaults = OmegaConf.structured(FunnelrunConfig)
    for key in ("eval", "sample"):
        cfg[key] = OmegaConf.merge(defaults[key], cfg.get(key) or {})
    if "log_every_s" not in cfg:
        cfg.log_every_s = defaults.log_every_s
    return cfg


def load_run(path: Union[str, Path], checkpoint: str = "best", overrides: Optional[list[str]] = None) -> Run:
    """Load the run in directory ``path`` (or the run that wrote the checkpoint file ``path``).

    ``checkpoint``: ``"best"`` (the best-by-validation checkpoint, else ``last``), ``"last"``, or a file
    name in ``<run>/checkpoints/``; ignored when ``path`` is a checkpoint file. ``overrides``
    (``key=value``) change what may differ where the run is loaded, e.g. ``data.data_dir=...``.
    The model is rebuilt from the run's ``config.yaml`` and must match the checkpoint; a corrupt
    checkpoint, or one of another model, raises :class:`~funnelrun.errors.FunnelrunError`."""
    run_dir, ckpt = locate_run(path, checkpoint)
    cfg = read_run_config(run_dir)
    if overrides:
        cfg = cast(DictConfig, OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides))))
        assert isinstance(cfg, DictConfig)
    model, datamodule = _build(cfg, ckpt)
    metrics_file = run_dir / METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    return Run(path=run_dir, config=cfg, model=model, datamodule=datamodule, checkpoint=ckpt, metrics=metrics)
