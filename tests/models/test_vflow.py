"""VFlow (Chen et al. 2020): log_prob = log p(x, a) - log q(a | x), eq. (3); D_Z = 0 is plain Glow."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.models.vflow import build_vflow
from funnelrun.surjections.augment import Augment
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling

SMALL = dict(num_steps=2, hidden_features=8, num_blocks=1)


def test_without_augmentation_it_is_an_exact_glow():
    model = build_vflow((2,), augment_dim=0, **SMALL)
    layers = model.transform.transforms
    assert model.exact is True and model.latent_dim == 2
    assert not any(isinstance(t, Augment) for t in layers)
    assert sum(isinstance(t, ActNorm) for t in layers) == 2
    assert sum(isinstance(t, AffineCoupling) for t in layers) == 2


def test_augmented_flow_is_a_bound_over_data_and_extra_dimensions():
    model = build_vflow((2,), augment_dim=3, **SMALL)
    augment, *p_layers = model.transform.transforms
    assert isinstance(augment, Augment) and augment.augment_dim == 3
    assert model.exact is False and model.latent_dim == 5
    assert all(t.bijective for t in p_layers)
    assert model.sample(4).shape == (4, 2)


def test_q_has_neither_actnorm_nor_dropout():
    augment, *p_layers = build_vflow((2,), augment_dim=2, dropout=0.3, **SMALL).transform.transforms
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for t in p_layers for m in t.modules())
    assert not any(isinstance(m, ActNorm) for m in augment.q.modules())
    assert all(m.p == 0 for m in augment.q.modules() if isinstance(m, nn.Dropout))


def test_transform_picks_the_step_kind():
    model = build_vflow((2,), augment_dim=2, transform="coupling", num_bins=4, **SMALL)
    assert any(isinstance(m, RQSplineCoupling) for m in model.transform.transforms[1:])


def test_log_prob_is_joint_density_minus_q():
    torch.manual_seed(0)
    model = build_vflow((2,), augment_dim=2, **SMALL).double().eval()
    for p in model.parameters():
        nn.init.normal_(p, std=0.3)
    augment, *p_layers = model.transform.transforms
    x = torch.randn(6, 2, dtype=torch.float64)
    torch.manual_seed(1)
    log_p = model.log_prob(x)
    torch.manual_seed(1)
    a = augment.q.sample(x)
    eps, logdet = CompositeTransform(p_layers)(torch.cat([x, a], dim=1))
    assert torch.allclose(log_p, standard_normal_log_prob(eps) + logdet - augment.q.log_prob(a, x))


def test_negative_augmentation_is_refused():
    with pytest.raises(ValueError, match="augment_dim"):
        build_vflow((2,), augment_dim=-1, **SMALL)
