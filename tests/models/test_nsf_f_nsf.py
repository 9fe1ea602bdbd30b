"""NSF and F-NSF builders: shapes, exactness flags, whole-model round trip, clear config errors."""
from __future__ import annotations

import pytest
import torch

from funnelrun.evaluation.certificate import certify
from funnelrun.models.f_nsf import build_f_nsf
from funnelrun.models.nsf import build_nsf

SMALL = dict(hidden_features=16, num_blocks=1, num_bins=5, tail_bound=3.0)


def _randomise(model, std=0.2):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)


@pytest.mark.parametrize("transform", ["coupling", "autoregressive"])
def test_nsf_is_exact_and_invertible(transform):
    model = build_nsf((4,), num_steps=3, transform=transform, **SMALL).double().eval()
    _randomise(model)
    x = torch.randn(32, 4, dtype=torch.float64)
    z, _ = model.transform(x)
    assert model.exact and model.latent_dim == 4
    assert torch.allclose(model.transform.inverse(z), x, atol=1e-7)
    assert model.sample(10).shape == (10, 4)


@pytest.mark.parametrize("transform", ["coupling", "autoregressive"])
@pytest.mark.parametrize("conditional", ["flow", "gaussian"])
def test_f_nsf_reduces_dimension_exactly(transform, conditional):
    model = build_f_nsf((6,), num_steps=4, transform=transform, latent_dim=4, funnel_level=2,
                        conditional=conditional, **SMALL).double().eval()
    _randomise(model)
    assert model.exact and model.latent_dim == 4 and model.data_dim == 6
    x = torch.randn(64, 6, dtype=torch.float64)
    errs = certify(model, x)
    assert errs["roundtrip_max_abs_err"] < 1e-6
    assert errs["logdet_max_abs_err"] < 1e-6
    assert errs["density_integral"] is None
    assert model.sample(7, temperature=0.5).shape == (7, 6)


def test_latent_dim_and_dim_reduction_agree_or_fail():
    assert build_f_nsf((6,), num_steps=2, dim_reduction=2, **SMALL).latent_dim == 4
    with pytest.raises(ValueError, match="disagree"):
        build_f_nsf((6,), num_steps=2, dim_reduction=2, latent_dim=3, **SMALL)


@pytest.mark.parametrize("latent_dim", [0, 6, 7])
def test_funnel_cannot_drop_all_or_no_dimensions(latent_dim):
    with pytest.raises(ValueError, match="between 1 and 5"):
        build_f_nsf((6,), num_steps=2, latent_dim=latent_dim, **SMALL)


def test_funnel_level_out_of_range_says_why():
    with pytest.raises(ValueError, match="funnel_level=3 must be between 0 and num_steps - 1 = 2"):
        build_f_nsf((6,), num_steps=3, latent_dim=4, funnel_level=3, **SMALL)


def test_nsf_refuses_a_smaller_latent():
    with pytest.raises(ValueError, match="model=f_nsf"):
        build_nsf((6,), latent_dim=3, **SMALL)


def test_f_nsf_has_fewer_parameters_than_nsf_at_the_same_size():
    """As in funnels A.6: replacing a step by a funnel does not add parameters."""
    nsf = build_nsf((6,), num_steps=4, **SMALL)
    f_nsf = build_f_nsf((6,), num_steps=4, latent_dim=4, funnel_level=1, **SMALL)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(f_nsf) < count(nsf)
