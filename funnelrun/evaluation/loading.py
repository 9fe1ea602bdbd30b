"""Compose a config the way ``funnelrun`` does and load a trained model from a checkpoint
(shared by ``funnelrun-check`` and ``funnelrun-sample``)."""
from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from funnelrun.config import register_configs
from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.models.flow import Flow
from funnelrun.validation import validate_config


def compose_config(overrides: list[str]) -> DictConfig:
    """The same config ``funnelrun`` would run with these overrides (no run directory made)."""
    register_configs()
    try:
        with initialize_config_module(config_module="funnelrun.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise FunnelrunError(str(exc)) from exc
    HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.choices.*} (cfg.name) resolves
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def load_model(overrides: list[str]) -> tuple[DictConfig, FunnelDataModule, Flow]:
    """Config, data and model for ``overrides``; the model's weights from ``ckpt_path`` when given
    (a checkpoint from another model or data shape is refused with the differences)."""
    from funnelrun.training.checkpoint import check_compatible, model_weights, read_checkpoint, resolve_ckpt_path
    from funnelrun.training.run import build_data, build_model, fingerprint

    cfg = compose_config(overrides)
    validate_config(cfg)
    torch.manual_seed(cfg.seed)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule)
    if cfg.ckpt_path is not None:
        path = resolve_ckpt_path(cfg.ckpt_path, Path.cwd())
        checkpoint = read_checkpoint(path)
        check_compatible(path, checkpoint, fingerprint(cfg, datamodule))
        model.load_state_dict(model_weights(checkpoint))
    return cfg, datamodule, model.eval()
