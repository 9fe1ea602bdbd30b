"""The one place that constructs things: config -> data module, config + data -> model (with the data's
preprocessing layers), the checkpoint fingerprint, and a model with a checkpoint's weights. Training,
evaluation, the scripts and the Python API all build through here."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from funnelrun.checkpoint import check_compatible, load_weights, read_checkpoint, resolve_ckpt_path
from funnelrun.config import compose_config
from funnelrun.data.base import FunnelDataModule
from funnelrun.models.flow import Flow
from funnelrun.validation import validate_config


def build_data(cfg: DictConfig) -> FunnelDataModule:
    """The data module of ``cfg.data`` (nothing is read until its ``setup``)."""
    # data.table7 holds the image models' defaults (read by the model configs), not a data argument
    data = cast(dict[str, Any], OmegaConf.to_container(cfg.data, resolve=True))
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
    """What a checkpoint must match to be loaded into this model."""
    stamp = {
        "model": OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True),
        "data_shape": list(datamodule.data_shape),
    }
    if datamodule.bits is not None:
        # images: the preprocessing layers are part of the model, though they hold no weights
        stamp["bits"] = datamodule.bits
        stamp["preprocessing"] = [repr(layer) for layer in datamodule.preprocessing()]
    return stamp


def build(cfg: DictConfig, ckpt_path: Optional[Path] = None) -> tuple[Flow, FunnelDataModule]:
    """Model and data module of a (validated) config; with ``ckpt_path``, the model holds that
    checkpoint's weights (a checkpoint of another model or data shape is refused with the differences)
    and is in eval mode. The model's random initialisation is seeded by ``cfg.seed``."""
    validate_config(cfg)
    torch.manual_seed(cfg.seed)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule)
    if ckpt_path is not None:
        checkpoint = read_checkpoint(ckpt_path)
        check_compatible(ckpt_path, checkpoint, fingerprint(cfg, datamodule))
        load_weights(model, ckpt_path, checkpoint)
        model.eval()
    return model, datamodule


def load_model(overrides: list[str]) -> tuple[DictConfig, FunnelDataModule, Flow]:
    """Config, data and model for ``overrides`` as ``funnelrun`` composes them; the model's weights
    from ``ckpt_path`` when given (``last``: the working directory's run), in eval mode."""
    cfg = compose_config(overrides)
    path = resolve_ckpt_path(cfg.ckpt_path, Path.cwd()) if cfg.ckpt_path is not None else None
    model, datamodule = build(cfg, path)
    return cfg, datamodule, model.eval()
