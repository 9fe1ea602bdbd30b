"""The F-MLP builder (funnels paper §3, A.6): layer schedule, exactness, density integral, errors."""
from __future__ import annotations

import pytest
import torch

from funnelrun.data.plane import four_circles
from funnelrun.evaluation.certificate import certify
from funnelrun.evaluation.exactness import density_integral_2d
from funnelrun.models.f_mlp import a6_widths, build_f_mlp
from funnelrun.surjections.funnel_mlp import FunnelMLP
from funnelrun.transforms.linear import LULinear, RandomPermutation
from funnelrun.transforms.splines import RQSpline

SMALL = dict(num_bins=5, conditional_hidden_features=16)
pytestmark = pytest.mark.usefixtures("one_thread")


def _random_f_mlp(features: int, latent_dim: int, std: float = 0.2, seed: int = 1):
    """A seeded F-MLP with noise of ``std`` added to every parameter (far from its identity start)."""
    torch.manual_seed(seed)
    model = build_f_mlp((features,), latent_dim=latent_dim, **SMALL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)
    return model


def _widths(model) -> list[tuple[int, int]]:
    """(in, out) of every weight layer, in order."""
    out = []
    for layer in model.transform.transforms:
        if isinstance(layer, FunnelMLP):
            out.append((layer.features, layer.features - layer.dropped))
        elif isinstance(layer, LULinear):
            out.append((layer.lu.shape[0],) * 2)
    return out


@pytest.mark.parametrize(
    "features,latent,expected",
    [(2, 1, [2, 2, 2, 2, 1, 1, 1, 1]), (6, 4, [6, 6, 5, 5, 4, 4, 4, 4]), (8, 3, [8, 8, 6, 6, 3, 3, 3, 3]),
     (3, 2, [3, 3, 3, 3, 2, 2, 2, 2])],
)
def test_a6_schedule(features, latent, expected):
    """Two preserving layers, one to half of (input + latent), one preserving, one to the latent, three preserving."""
    assert a6_widths(features, latent) == expected
    model = build_f_mlp((features,), latent_dim=latent, **SMALL)
    assert [w for _, w in _widths(model)] == expected
    assert model.latent_dim == latent and model.exact and model.data_dim == features
    kinds = [type(t) for t in model.transform.transforms]
    assert kinds[0::3] == [RandomPermutation] * 8 and kinds[2::3] == [RQSpline] * 8
    assert sum(isinstance(t, FunnelMLP) for t in model.transform.transforms) == len(set(expected)) - 1


def test_default_spline_activation_is_the_papers():
    spline = build_f_mlp((4,), latent_dim=2).transform.transforms[2]
    assert (spline.num_bins, spline.tail_bound) == (10, 2.0)


def test_custom_widths():
    model = build_f_mlp((6,), latent_dim=2, widths=[4, 4, 2], **SMALL)
    assert _widths(model) == [(6, 4), (4, 4), (4, 2)]


@pytest.mark.parametrize("features,latent", [(6, 3), (3, 1)])
def test_random_f_mlp_is_exact(features, latent):
    model = _random_f_mlp(features, latent).double()
    x = torch.randn(48, features, dtype=torch.float64)
    errs = certify(model, x)  # every layer: round trip / right inverse, log-det against autograd
    assert errs["roundtrip_max_abs_err"] < 1e-8
    assert errs["logdet_max_abs_err"] < 1e-8
    samples = model.sample(5, temperature=0.7)
    assert samples.shape == (5, features) and torch.isfinite(samples).all()


def test_full_latent_is_a_bijective_mlp_flow():
    model = _random_f_mlp(3, 3).double().eval()
    assert model.latent_dim == 3 and model.transform.bijective
    assert not any(isinstance(t, FunnelMLP) for t in model.transform.transforms)
    x = torch.randn(16, 3, dtype=torch.float64)
    assert torch.allclose(model.transform.inverse(model.transform(x)[0]), x, atol=1e-10)


@pytest.mark.parametrize("latent_dim", [0, -1, 5])
def test_invalid_latent_dim_says_the_valid_range(latent_dim):
    with pytest.raises(ValueError, match=r"latent_dim between 1 and 4 \(4: no funnel"):
        build_f_mlp((4,), latent_dim=latent_dim)


@pytest.mark.parametrize(
    "widths,match", [([4, 3], "end at latent_dim=2"), ([], "non-empty"), ([3, 4, 2], "grows from 3 to 4")]
)
def test_invalid_widths_say_why(widths, match):
    with pytest.raises(ValueError, match=match):
        build_f_mlp((4,), latent_dim=2, widths=widths)


def _train(model, steps: int, batch: int = 256) -> tuple[float, float]:
    torch.manual_seed(0)
    data = four_circles(steps * batch, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for i in range(steps):
        loss = -model.log_prob(data[i * batch : (i + 1) * batch]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return sum(losses[:10]) / 10, sum(losses[-10:]) / 10


def test_random_2d_to_1d_density_integrates_to_one():
    model = _random_f_mlp(2, 1, std=0.3).eval()
    (funnel,) = [t for t in model.transform.transforms if isinstance(t, FunnelMLP)]
    with torch.no_grad():
        funnel.transform.context_weight.fill_(0.7)  # W' clearly != 0: z depends on the dropped x
        inside = (model.sample(20_000).abs() < 9.0).all(dim=1).float().mean().item()
    assert inside > 0.998  # the grid below holds the model's mass, so its integral must be 1
    integral = density_integral_2d(model.log_prob, (-9.0, -9.0), (9.0, 9.0), points_per_axis=400)
    assert integral == pytest.approx(1.0, abs=0.01)


def test_trained_2d_to_1d_density_integrates_to_one():
    model = build_f_mlp((2,), latent_dim=1, **SMALL)
    first, last = _train(model, steps=200)
    assert last < first - 0.3  # it learned: the integral is not that of an untouched model
    integral = density_integral_2d(model.log_prob, (-7.0, -7.0), (7.0, 7.0), points_per_axis=400)
    assert integral == pytest.approx(1.0, abs=0.01)


def test_shared_splines_and_no_last_activation_stay_exact():
    """The authors' image F-MLP: one set of knots per activation, none after the last layer."""
    torch.manual_seed(0)
    model = build_f_mlp((6,), latent_dim=2, widths=[4, 3, 2], shared_spline=True, last_activation=False, **SMALL)
    kinds = [type(t) for t in model.transform.transforms]
    assert kinds == [RandomPermutation, FunnelMLP, RQSpline] * 2 + [RandomPermutation, FunnelMLP]
    assert all(t.params.shape == (1, 14) for t in model.transform.transforms if isinstance(t, RQSpline))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    errs = certify(model.double(), torch.randn(32, 6, dtype=torch.float64))
    assert errs["roundtrip_max_abs_err"] < 1e-9 and errs["logdet_max_abs_err"] < 1e-9
