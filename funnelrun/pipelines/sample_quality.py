"""``funnelrun-eval ckpt_path=<run> eval.sample_quality=true``: the Inception score and FID of a
trained image model's samples (funnels paper Table 3), into ``eval_metrics.json``.

    funnelrun-eval ckpt_path=<run> eval.sample_quality=true eval.inception_weights=<weights file>

``eval.quality_samples`` samples (default 50,000, the paper's protocol) are drawn at each of
``eval.temperatures``, ``eval.quality_batch_size`` at a time, and scored against the whole official
training split (:mod:`funnelrun.evaluation.sample_quality`). The network is built first, so a
missing weights file or a missing ``funnelrun[vision]`` extra stops the tool before anything is
sampled or written. ``eval.quality_network=standin`` swaps in a small fixed random network (tests,
timing); its numbers are written as ``sample/standin_*``, never as FID or IS.
"""
from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from funnelrun.api import Run
from funnelrun.data.images import ImageDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.sample_quality import ScoringNetwork, quality_metrics, quality_network, sample_quality


def prepare_network(cfg: DictConfig, run: Run) -> ScoringNetwork:
    """The scoring network, checked before anything runs: image data, and the weights at hand."""
    if not isinstance(run.datamodule, ImageDataModule):
        raise FunnelrunError(
            f"eval.sample_quality=true scores image samples (Inception score, FID); the run in {run.path} models "
            f"{cfg.data.name}, which are not images. Leave eval.sample_quality out for it"
        )
    return quality_network(cfg.eval.quality_network, cfg.eval.inception_weights)


def score_samples(cfg: DictConfig, run: Run, network: ScoringNetwork,
                  device: torch.device) -> tuple[dict[str, Any], str]:
    """(the ``sample/*`` metrics, a one-line summary) of ``run``'s model at every ``eval.temperatures``."""
    assert isinstance(run.datamodule, ImageDataModule)
    torch.manual_seed(cfg.seed)
    result = sample_quality(
        run.model.sample, run.datamodule, network, [float(t) for t in cfg.eval.temperatures],
        int(cfg.eval.quality_samples), int(cfg.eval.quality_batch_size), device, every_s=float(cfg.log_every_s),
    )
    inception = result.network == "inception"
    names = ("FID", "IS") if inception else ("stand-in FD", "stand-in score")
    parts = [f"T = {t}: {names[0]} {s.fid:.2f}, {names[1]} {s.inception_score:.2f} +- {s.inception_score_sd:.2f}"
             for t, s in result.scores.items()]
    what = ("Inception network" if inception
            else "STAND-IN network (a fixed random one: these are no FID or Inception score)")
    line = (f"sample quality ({what}; {result.samples} samples per temperature, reference: "
            f"{result.reference_examples} training images): " + "; ".join(parts))
    return quality_metrics(result), line
