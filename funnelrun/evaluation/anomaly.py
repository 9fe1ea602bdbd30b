"""Likelihood-based anomaly detection (funnels paper §4, Table 4): per-example scores over a whole
test split and the AUROC of the NLL as an anomaly score (used by ``funnelrun-eval``,
:mod:`funnelrun.pipelines.anomaly`)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from funnelrun.console import DEFAULT_EVERY_S, Progress
from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.models.flow import Flow


def auroc(in_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Area under the ROC curve for ``ood_scores`` (positives) against ``in_scores`` (negatives):
    the Mann-Whitney U statistic over n_in * n_ood, from average ranks (ties count 1/2).

    Example:
        >>> auroc(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
        0.875
    """
    in_scores, ood_scores = np.asarray(in_scores, np.float64), np.asarray(ood_scores, np.float64)
    if len(in_scores) == 0 or len(ood_scores) == 0:
        raise FunnelrunError("AUROC needs at least one in-distribution and one OOD example")
    scores = np.concatenate([in_scores, ood_scores])
    if np.isnan(scores).any():
        raise FunnelrunError("the model gave NaN log-likelihoods, so no AUROC; check the checkpoint and the data")
    _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2)[group]  # 1-based ranks, ties get their group's average
    n_in, n_ood = len(in_scores), len(ood_scores)
    u = ranks[n_in:].sum() - n_ood * (n_ood + 1) / 2
    return float(u / (n_in * n_ood))


@torch.no_grad()
def split_log_likelihoods(
    model: Flow, datamodule: FunnelDataModule, is_samples: int, is_chunk_size: int, device: torch.device,
    label: str = "scoring", every_s: float = DEFAULT_EVERY_S,
) -> tuple[Tensor, Optional[Tensor]]:
    """Per-example log p(x) (float64, CPU) over the whole test split: exact, or for a bound model
    the importance-weighted estimate, returned with the one-sample bound (else None). Progress is
    reported under ``label`` (:class:`~funnelrun.console.Progress`: a bar on a terminal, else a line
    every ``every_s`` seconds)."""
    if datamodule.test is None:
        datamodule.setup("test")
    estimates: list[Tensor] = []
    bounds: list[Tensor] = []
    loader = datamodule.test_dataloader()
    with Progress(label, total=len(loader), every_s=every_s) as progress:
        for batch in loader:
            _score(model, batch, device, is_samples, is_chunk_size, estimates, bounds)
            progress.update()
    return torch.cat(estimates), (torch.cat(bounds) if bounds else None)


def _score(model: Flow, batch: Any, device: torch.device, is_samples: int, is_chunk_size: int,
           estimates: list[Tensor], bounds: list[Tensor]) -> None:
    """Append one batch's log p(x) estimates (and one-sample bounds, for a bound model)."""
    x = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
    bound = model.log_prob(x).double().cpu()
    if model.exact:
        estimates.append(bound)
    else:
        bounds.append(bound)
        estimates.append(importance_weighted_log_prob(model, x, is_samples, is_chunk_size).cpu())


def check_comparable(data: FunnelDataModule, ood: FunnelDataModule, ood_name: str) -> None:
    """The OOD set must be data the model can score: same shape, same bit depth."""
    if tuple(ood.data_shape) != tuple(data.data_shape):
        raise FunnelrunError(
            f"ood_data={ood_name} has data shape {tuple(ood.data_shape)} but the model was trained on data of "
            f"shape {tuple(data.data_shape)}; choose an OOD set of the same shape (e.g. fashion_mnist for an "
            f"mnist model)"
        )
    if ood.bits != data.bits:
        raise FunnelrunError(
            f"ood_data={ood_name} has {ood.bits} bits but the model's data has {data.bits}; set the same bit "
            f"depth for both (e.g. ood.bits={data.bits})"
        )
