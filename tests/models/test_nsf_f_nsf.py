"""NSF and F-NSF builders: shapes, exactness flags, whole-model round trip, clear config errors."""
from __future__ import annotations

import pytest
import torch

from funnelrun.evaluation.certificate import certify
from funnelrun.models.f_nsf import build_f_nsf
from funnelrun.models.nsf import build_nsf
from funnelrun.surjections.coupling_funnel import CouplingFunnel
from funnelrun.transforms.coupling import RQSplineCoupling
from funnelrun.transforms.linear import LULinear, RandomPermutation

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


def test_the_funnel_step_opens_with_a_permutation_and_lu_like_every_step():
    """The authors' uci.py: permutation -> LU-linear before every step, the funnel's included, so the
    funnel drops learned linear combinations, never raw columns; its coupling transforms every kept
    coordinate given the dropped ones; the steps after it continue the alternating masks."""
    model = build_f_nsf((6,), num_steps=4, latent_dim=4, funnel_level=2, **SMALL)
    kinds = [type(t) for t in model.transform.transforms]
    step = [RandomPermutation, LULinear, RQSplineCoupling]
    assert kinds == [*step, *step, RandomPermutation, LULinear, CouplingFunnel, *step, LULinear]
    funnel = model.transform.transforms[8]
    assert funnel.coupling.identity_idx.tolist() == [0, 1] and funnel.coupling.transform_idx.tolist() == [2, 3, 4, 5]
    (after,) = [t for t in model.transform.transforms[9:] if isinstance(t, RQSplineCoupling)]
    assert after.transform_idx.tolist() == [1, 3]  # step 3 of 0..3: odd features, as if no funnel
    assert isinstance(funnel.conditional.transform.transforms[-1], LULinear)  # p_phi's flow ends in an LU


def test_unconditional_transform_reaches_every_spline_coupling():
    model = build_f_nsf((6,), num_steps=4, latent_dim=4, funnel_level=1, unconditional_transform=True, **SMALL)
    couplings = [m for m in model.modules() if isinstance(m, RQSplineCoupling)]
    assert len(couplings) == 4 + 2  # 3 steps, the funnel's coupling, p_phi's 2 steps
    assert all(c.unconditional is not None for c in couplings)
    plain = build_nsf((6,), num_steps=2, **SMALL)
    assert all(m.unconditional is None for m in plain.modules() if isinstance(m, RQSplineCoupling))
