"""VFlow's augmentation layer (§3.1): output concat(x, a), a ~ q(a | x), contribution -log q(a | x)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from funnelrun.distributions.conditional import ConditionalFlow
from funnelrun.models.nsf import flow_steps
from funnelrun.surjections.augment import Augment
from funnelrun.transforms.base import CompositeTransform


def _augment(augment_dim: int = 2) -> Augment:
    torch.manual_seed(0)
    steps = flow_steps(2, augment_dim, kind="affine", context_features=3, hidden_features=8, num_blocks=1,
                       num_bins=4, tail_bound=3.0)
    layer = Augment(ConditionalFlow(augment_dim, CompositeTransform(steps))).double()
    for p in layer.parameters():
        nn.init.normal_(p, std=0.3)
    return layer


def test_forward_appends_a_sample_and_scores_minus_its_log_density():
    layer = _augment()
    x = torch.randn(7, 3, dtype=torch.float64)
    xa, contribution = layer(x)
    assert xa.shape == (7, 5) and layer.out_features(3) == 5
    assert torch.equal(xa[:, :3], x)
    assert torch.allclose(contribution, -layer.q.log_prob(xa[:, 3:], x), atol=1e-10)


def test_samples_differ_between_calls_and_inverse_drops_them():
    layer = _augment()
    x = torch.randn(7, 3, dtype=torch.float64)
    first, second = layer(x)[0], layer(x)[0]
    assert not torch.allclose(first[:, 3:], second[:, 3:])
    assert torch.equal(layer.inverse(first), x)


def test_augmentation_is_reparameterised_so_q_gets_gradients():
    layer = _augment()
    xa, _ = layer(torch.randn(7, 3, dtype=torch.float64))
    xa[:, 3:].pow(2).sum().backward()
    grads = [p.grad for p in layer.q.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_is_a_bound_and_needs_at_least_one_dimension():
    assert _augment().exact is False and _augment().bijective is False
    with pytest.raises(ValueError, match="at least one"):
        Augment(ConditionalFlow(0, CompositeTransform([])))


def test_entropy_warmup_weights_minus_log_q_in_training_only():
    layer = _augment()
    warm = Augment(layer.q, entropy_warmup_steps=10, entropy_warmup_start=0.2).double()
    x = torch.randn(7, 3, dtype=torch.float64)
    for step, beta in ((0, 0.2), (5, 0.6), (10, 1.0), (50, 1.0)):
        warm.set_step(step)
        torch.manual_seed(1)
        xa, contribution = warm.train()(x)
        assert torch.allclose(contribution, -beta * layer.q.log_prob(xa[:, 3:], x), atol=1e-10)
    warm.set_step(0)
    torch.manual_seed(1)
    xa, contribution = warm.eval()(x)  # evaluation: the bound's -log q, whatever the step
    assert torch.allclose(contribution, -layer.q.log_prob(xa[:, 3:], x), atol=1e-10)


def test_entropy_warmup_settings_are_checked():
    with pytest.raises(ValueError, match="entropy_warmup"):
        Augment(_augment().q, entropy_warmup_steps=-1)
    with pytest.raises(ValueError, match="entropy_warmup"):
        Augment(_augment().q, entropy_warmup_steps=10, entropy_warmup_start=1.5)
