"""Importance-weighted log-likelihood (VFlow eq. 5): exact when q is the true posterior, tighter
with more samples, float64-safe, and the same with or without chunking."""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.models.vae import build_vae
from funnelrun.models.vflow import build_vflow

from toys import linear_gaussian_vae


def test_exact_posterior_gives_the_analytic_log_likelihood_for_any_sample_count():
    model, marginal = linear_gaussian_vae()
    x = marginal.sample((64,))
    for s in (1, 7, 100):
        estimate = importance_weighted_log_prob(model, x, num_samples=s, chunk_size=16)
        assert estimate.dtype == torch.float64
        assert torch.allclose(estimate, marginal.log_prob(x), atol=1e-9)


def test_a_flow_without_augmentation_is_estimated_exactly():
    torch.manual_seed(0)
    model = build_vflow((2,), augment_dim=0, num_steps=2, hidden_features=8, num_blocks=1).double().eval()
    for p in model.parameters():
        nn.init.normal_(p, std=0.3)
    x = torch.randn(32, 2, dtype=torch.float64)
    assert model.exact
    estimate = importance_weighted_log_prob(model, x, num_samples=10, chunk_size=4)
    assert torch.allclose(estimate, model.log_prob(x).double(), atol=1e-10)


def test_estimate_tightens_with_more_samples_towards_the_true_log_likelihood():
    torch.manual_seed(0)
    model, marginal = linear_gaussian_vae(mean_shift=0.5, log_std_shift=0.3)
    x = marginal.sample((2000,))
    truth = marginal.log_prob(x).mean()
    bound, is_10, is_100 = (importance_weighted_log_prob(model, x, s).mean() for s in (1, 10, 100))
    assert bound < is_10 < is_100 < truth + 0.01
    assert truth - is_100 < (truth - bound) / 5


def test_estimate_beats_the_one_sample_bound_on_a_random_vflow():
    torch.manual_seed(0)
    model = build_vflow((2,), augment_dim=2, num_steps=2, hidden_features=16, num_blocks=1).eval()
    for p in model.parameters():
        nn.init.normal_(p, std=0.3)
    x = torch.randn(500, 2)
    assert importance_weighted_log_prob(model, x, 20).mean() > importance_weighted_log_prob(model, x, 1).mean() + 0.5


def test_chunking_does_not_change_the_estimate_for_the_same_seed():
    """torch draws the same normal stream in one call or several when each holds a multiple of 16
    values, so 32 examples with a 1-D latent get identical samples in every chunking."""
    torch.manual_seed(0)
    model = build_vae((2,), latent_dim=1, hidden_features=16, depth=2).eval()
    for p in model.parameters():
        nn.init.normal_(p, std=0.3)
    x = torch.randn(32, 2)
    estimates = []
    for chunk_size in (12, 5, 1):
        torch.manual_seed(1)
        estimates.append(importance_weighted_log_prob(model, x, num_samples=12, chunk_size=chunk_size))
    assert torch.allclose(estimates[0], estimates[1], rtol=0, atol=1e-6)
    assert torch.allclose(estimates[0], estimates[2], rtol=0, atol=1e-6)


class _Counting:
    """log_prob of the k-th sample (counted across calls) of example i is ``base[i] + k``."""

    def __init__(self, base: Tensor):
        self.base = base
        self.seen = 0

    def log_prob(self, x: Tensor) -> Tensor:
        n = x.shape[0] // self.base.shape[0]
        k = torch.arange(self.seen, self.seen + n, dtype=self.base.dtype)
        self.seen += n
        return (k[:, None] + self.base).reshape(-1)


def test_log_mean_exp_is_exact_in_float64_where_float32_overflows():
    base = torch.tensor([-7000.25, 0.0, 800.5], dtype=torch.float32)
    estimate = importance_weighted_log_prob(_Counting(base), torch.zeros(3, 1), num_samples=5, chunk_size=2)
    log_mean_exp_k = math.log(sum(math.exp(k) for k in range(5)) / 5)
    expected = torch.tensor([-7000.25, 0.0, 800.5], dtype=torch.float64) + log_mean_exp_k
    assert estimate.dtype == torch.float64
    assert torch.allclose(estimate, expected, rtol=0, atol=1e-9)


def test_no_gradient_is_kept_and_bad_arguments_are_refused():
    model = build_vae((2,), hidden_features=8, depth=1).eval()
    assert not importance_weighted_log_prob(model, torch.randn(4, 2), 3).requires_grad
    with pytest.raises(ValueError, match="num_samples"):
        importance_weighted_log_prob(model, torch.randn(4, 2), 0)
