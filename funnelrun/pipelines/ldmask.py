"""The two-stage run of RealNVP with log-det based masking (Das et al. 2019, Sec. 3.2.2, Sec. 4.2).

``funnelrun model=realnvp_ldmask`` runs both stages in one command, each through the usual training
run (:func:`funnelrun.pipelines.train.train`): stage 1 trains the full-dimensional RealNVP (same
image settings, no factor-out) for ``model.stage1_steps`` steps in ``<run dir>/stage1/`` (its own
checkpoints and metrics; an interrupted stage 1 resumes, a finished one is reused); :func:`fit_masks`
averages each dimension's log-det L_d^(l) (eq. 12) over the validation split with
its best-by-validation weights, builds the masks (Fig. 1) and installs them in the stage-2 model
(:mod:`funnelrun.models.realnvp_ldmask`), which then trains in ``<run dir>``. It writes
``<run dir>/ldmask/masks.pt`` (maps, masks, exit levels) and ``masks.png``.

With ``model.ldmask_source=conv_svd`` stage 1 is the multi-scale Glow (no factor-out) and the masks
are channel-wise, from the per-channel scores of its 1 x 1 convolutions' singular values
(:mod:`funnelrun.evaluation.channel_logdet`; data-independent, no pass over the validation split);
``masks.pt`` holds the channel scores and masks, and there is no ``masks.png``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from funnelrun.builder import build_data, build_model
from funnelrun.checkpoint import load_weights, read_checkpoint
from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import RunInterrupted
from funnelrun.evaluation.channel_logdet import level_channel_scores
from funnelrun.evaluation.logdet_map import mean_level_logdet_maps
from funnelrun.models.flow import Flow
from funnelrun.models.realnvp_ldmask import LDMaskSource, channel_masks_from_scores, masks_from_maps, set_masks
from funnelrun.pipelines.train import train
from funnelrun.run_files import CHECKPOINT_DIR, METRICS_FILE
from funnelrun.training.run_dir import interrupted

STAGE1_DIR = "stage1"
MASK_DIR = "ldmask"


def stage1_config(cfg: DictConfig) -> DictConfig:
    """The run config of stage 1: the plain image RealNVP (conv_svd: Glow) with the same settings, no
    factor-out."""
    stage1 = copy.deepcopy(cfg)
    image = cast(dict[str, Any], OmegaConf.to_container(cfg.model.image, resolve=True, enum_to_str=True))
    if LDMaskSource(cfg.model.ldmask_source) is LDMaskSource.conv_svd:
        architecture = {"_target_": "funnelrun.models.image_flows.build_image_nsf", "affine": True}
    else:
        architecture = {"_target_": "funnelrun.models.glow.build_realnvp", "actnorm": cfg.model.actnorm}
    with open_dict(stage1):
        stage1.model = {**architecture, "latent_dim": None, "image": {**image, "factor_out": False}}
        stage1.trainer.max_steps = cfg.model.stage1_steps
        stage1.ckpt_path = None
    return stage1


def is_ldmask(cfg: DictConfig) -> bool:
    """Whether ``cfg`` is a log-det-masking run (it names the steps of its stage 1)."""
    return "stage1_steps" in cfg.model


def train_ldmask(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Stage 1 in ``<run_dir>/stage1`` (unless finished), masks, then stage 2 in ``run_dir``.

    A run whose stage 2 has saved a checkpoint, or a given checkpoint file, continues stage 2: the
    masks are buffers of its checkpoint. A stage 1 stopped by a signal is resumed by the same
    command with ``hydra.run.dir=<run_dir>``, as any run."""
    stage2_started = (run_dir / CHECKPOINT_DIR / "last.ckpt").is_file()
    if stage2_started or cfg.ckpt_path not in (None, "last"):
        return train(cfg, run_dir)
    stage1_dir = run_dir / STAGE1_DIR
    stage1 = stage1_config(cfg)
    if not (stage1_dir / METRICS_FILE).exists():
        if cfg.ckpt_path == "last" and interrupted(stage1_dir):
            with open_dict(stage1):
                stage1.ckpt_path = "last"
        stage1_dir.mkdir(parents=True, exist_ok=True)
        print(f"log-det masking, stage 1: {stage1.model._target_} without factor-out for "
              f"{stage1.trainer.max_steps} steps in {stage1_dir}", flush=True)
        try:
            train(stage1, stage1_dir)
        except RunInterrupted as stop:
            raise stop.resumed_in(run_dir) from stop
    with open_dict(cfg):
        cfg.ckpt_path = None  # stage 2 starts here
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule)
    fit_masks(cfg, run_dir, model, datamodule)
    return train(cfg, run_dir, model=model, datamodule=datamodule)


def fit_masks(cfg: DictConfig, run_dir: Path, model: Flow, datamodule: FunnelDataModule) -> None:
    """Install in ``model`` (stage 2) the masks of the finished stage 1 in ``<run_dir>/stage1``."""
    stage1_dir = run_dir / STAGE1_DIR
    stage1 = stage1_config(cfg)
    best = json.loads((stage1_dir / METRICS_FILE).read_text())["best_checkpoint"]
    checkpoint_path = Path(best) if best else stage1_dir / CHECKPOINT_DIR / "last.ckpt"
    stage1_model = build_model(stage1, datamodule)
    load_weights(stage1_model, checkpoint_path, read_checkpoint(checkpoint_path))

    out = run_dir / MASK_DIR
    out.mkdir(exist_ok=True)
    if LDMaskSource(cfg.model.ldmask_source) is LDMaskSource.conv_svd:
        scores = level_channel_scores(stage1_model)
        masks = channel_masks_from_scores(scores)
        saved: dict[str, Any] = {"channel_scores": scores, "masks": masks}
    else:
        maps = mean_level_logdet_maps(stage1_model, datamodule.val_dataloader())
        masks, exit_level = masks_from_maps(maps)
        saved = {"logdet_maps": maps, "masks": masks, "exit_level": exit_level}
        plot_masks(maps, exit_level, out / "masks.png")
    set_masks(model, masks)
    torch.save({**saved, "stage1_checkpoint": str(checkpoint_path)}, out / "masks.pt")
    print(f"log-det masking, stage 2: masks in {out / 'masks.pt'}", flush=True)


def plot_masks(maps: list[torch.Tensor], exit_level: torch.Tensor, path: Path) -> Path:
    """One panel per level: the mean log-det map L_d^(l) per pixel (averaged over channels); then the
    level after which each pixel leaves the flow (averaged over channels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(3 * (len(maps) + 1), 3), squeeze=False)
    for index, (axis, pixel_map) in enumerate(zip(axes[0], maps)):
        image = axis.imshow(pixel_map.float().mean(dim=0).numpy(), cmap="viridis")
        axis.set_title(f"log-det to level {index}")
        fig.colorbar(image, ax=axis, fraction=0.046)
    image = axes[0, -1].imshow(exit_level.float().mean(dim=0).numpy(), cmap="gray")
    axes[0, -1].set_title("factored out after level")
    fig.colorbar(image, ax=axes[0, -1], fraction=0.046)
    for axis in axes[0]:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
