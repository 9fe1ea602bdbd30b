"""Importance-weighted log-likelihood estimates for models that only give a bound.

A model with stochastic layers (``exact = False``: VAE encoder, VFlow augmentation) returns from
``log_prob(x)`` a one-sample bound log w = log p(x, h) - log q(h | x), h ~ q(h | x), where h collects
everything its layers sampled. Averaging S independent weights gives the importance-sampling
estimate (VFlow eq. 5; Burda et al. 2016)

    log p(x) ~= log (1/S) sum_s w_s,

a lower bound in expectation that tightens as S grows and equals log p(x) when q is the exact
posterior. It is generic: S independent calls of ``model.log_prob``, no per-family code. The
log-mean-exp runs in float64 (a weight is exp of thousands of nats for an image), and the S samples
are drawn ``chunk_size`` at a time, so memory is that of one ``log_prob`` call on
``chunk_size * batch`` rows.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Protocol

import torch
from torch import Tensor


class LogProbModel(Protocol):
    def log_prob(self, x: Tensor) -> Tensor: ...


@torch.no_grad()
def importance_weighted_log_prob(model: LogProbModel, x: Tensor, num_samples: int, chunk_size: int = 16) -> Tensor:
    """log (1/S) sum_s exp(model.log_prob(x)_s) per example, float64, for S = ``num_samples``.

    Each chunk evaluates ``model.log_prob`` once on x repeated (sample-major) ``chunk_size`` times.
    Call it with the model in eval mode (dropout off).

    Example:
        >>> import torch
        >>> from funnelrun.models.vae import build_vae
        >>> vae = build_vae((2,), latent_dim=1).eval()
        >>> importance_weighted_log_prob(vae, torch.randn(5, 2), num_samples=100).shape
        torch.Size([5])
    """
    if num_samples < 1 or chunk_size < 1:
        raise ValueError(f"num_samples and chunk_size must be >= 1, got {num_samples} and {chunk_size}")
    batch = x.shape[0]
    total = torch.full((batch,), -math.inf, dtype=torch.float64, device=x.device)
    for start in range(0, num_samples, chunk_size):
        n = min(chunk_size, num_samples - start)
        log_w = model.log_prob(x.repeat(n, *([1] * (x.dim() - 1)))).double().view(n, batch)
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
    return total - math.log(num_samples)


def log_density(model: LogProbModel, num_samples: int, chunk_size: int = 16) -> Callable[[Tensor], Tensor]:
    """The model's log density as a function of x: exact ``log_prob`` for exact models, else the
    importance-weighted estimate with ``num_samples`` samples (for figures and grids)."""
    if getattr(model, "exact", False):
        return model.log_prob
    return partial(importance_weighted_log_prob, model, num_samples=num_samples, chunk_size=chunk_size)
