"""Glow, F-Glow and RealNVP for vectors (funnels paper Table 1): structure, exactness, errors."""
from __future__ import annotations

import pytest
import torch

from funnelrun.distributions.conditional import ConditionalDiagonalGaussian, ConditionalFlow
from funnelrun.evaluation.certificate import certify
from funnelrun.evaluation.exactness import density_integral_2d
from funnelrun.models.glow import build_f_glow, build_glow, build_realnvp
from funnelrun.surjections.coupling_funnel import CouplingFunnel
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.coupling import AffineCoupling
from funnelrun.transforms.linear import LULinear, Permutation, RandomPermutation

SMALL = dict(num_steps=4, hidden_features=16, num_blocks=1)
pytestmark = pytest.mark.usefixtures("one_thread")


def _randomised(build, *args, std: float = 0.2, **kwargs):
    """A seeded model with noise added to every parameter (ActNorm and LU away from the identity)."""
    torch.manual_seed(0)
    model = build(*args, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)
    return model.eval()


def _kinds(model) -> list[type]:
    return [type(t) for t in model.transform.transforms]


def test_glow_steps_are_actnorm_permutation_lu_affine_coupling():
    model = build_glow((4,), **SMALL)
    step = [ActNorm, Permutation, LULinear, AffineCoupling]
    assert [next(k for k in step if issubclass(t, k)) for t in _kinds(model)] == step * 4 + [LULinear]
    assert model.exact and model.transform.bijective and model.latent_dim == 4


def test_realnvp_alternates_masks_without_permutations_or_lu():
    model = build_realnvp((4,), **SMALL)
    assert _kinds(model) == [AffineCoupling] * 4
    masks = [tuple(c.transform_idx.tolist()) for c in model.transform.transforms]
    assert masks == [(0, 2), (1, 3), (0, 2), (1, 3)]
    assert _kinds(build_realnvp((4,), actnorm=True, **SMALL)) == [ActNorm, AffineCoupling] * 4


@pytest.mark.parametrize("build", [build_glow, build_realnvp], ids=["glow", "realnvp"])
def test_random_bijective_flows_are_exact(build):
    model = _randomised(build, (5,), **SMALL).double()
    x = torch.randn(32, 5, dtype=torch.float64)
    errs = certify(model, x)  # round trip and log-det against the autograd Jacobian, layer by layer
    assert errs["roundtrip_max_abs_err"] < 1e-10 and errs["logdet_max_abs_err"] < 1e-10
    z, _ = model.transform(x)
    assert torch.allclose(model.transform.inverse(z), x, atol=1e-10)


def test_actnorm_initialises_on_the_first_training_batch():
    model = build_glow((3,), **SMALL)
    x = torch.randn(256, 3) * 3 + 1
    model.train()
    model.log_prob(x)
    first = model.transform.transforms[0]
    assert bool(first.initialized)
    normalised, _ = first(x)
    assert torch.allclose(normalised.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(normalised.std(0), torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("conditional,density", [("flow", ConditionalFlow), ("gaussian", ConditionalDiagonalGaussian)])
def test_random_f_glow_reduces_dimension_exactly(conditional, density):
    model = _randomised(build_f_glow, (6,), latent_dim=4, funnel_level=2, conditional=conditional, **SMALL).double()
    (funnel,) = [t for t in model.transform.transforms if isinstance(t, CouplingFunnel)]
    assert isinstance(funnel.coupling, AffineCoupling) and isinstance(funnel.conditional, density)
    assert model.exact and not model.transform.bijective and model.latent_dim == 4
    errs = certify(model, torch.randn(32, 6, dtype=torch.float64))  # includes the right-inverse condition
    assert errs["roundtrip_max_abs_err"] < 1e-10 and errs["logdet_max_abs_err"] < 1e-10
    assert model.sample(5, temperature=0.5).shape == (5, 6)


def test_f_glow_funnel_replaces_the_last_step_by_default():
    kinds = _kinds(build_f_glow((4,), latent_dim=2, **SMALL))
    assert kinds[-5:] == [ActNorm, RandomPermutation, LULinear, CouplingFunnel, LULinear]
    assert kinds.count(AffineCoupling) == 3


@pytest.mark.parametrize(
    "build,kwargs",
    [(build_glow, {}), (build_realnvp, {}), (build_f_glow, dict(latent_dim=1, conditional="gaussian"))],
    ids=["glow", "realnvp", "f_glow_2d_to_1d"],
)
def test_random_2d_density_integrates_to_one(build, kwargs):
    model = _randomised(build, (2,), **SMALL, **kwargs, std=0.1)  # larger noise puts mass far out
    with torch.no_grad():
        inside = (model.sample(20_000).abs() < 12.0).all(dim=1).float().mean().item()
    assert inside > 0.998  # the grid holds the model's mass, so its integral must be 1
    integral = density_integral_2d(model.log_prob, (-12.0, -12.0), (12.0, 12.0), points_per_axis=400)
    assert integral == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("build", [build_glow, build_realnvp])
def test_bijective_flows_refuse_a_smaller_latent(build):
    with pytest.raises(ValueError, match="latent_dim must be null or 4, got 2.*model=f_nsf, f_glow or f_mlp"):
        build((4,), latent_dim=2, **SMALL)


@pytest.mark.parametrize("latent_dim", [0, 4])
def test_f_glow_refuses_invalid_latent_sizes(latent_dim):
    with pytest.raises(ValueError, match="latent_dim between 1 and 3"):
        build_f_glow((4,), latent_dim=latent_dim, **SMALL)
