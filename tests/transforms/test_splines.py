import math

import pytest
import torch
import torch.nn.functional as F

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.splines import (
    RQSpline,
    identity_spline_params,
    packed_rational_quadratic_spline,
    rational_quadratic_spline,
    split_spline_params,
)

K = 5
BOUND = 3.0
MIN_SIZE = 1e-3


def random_params(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(*shape, 3 * K - 1, generator=g, dtype=torch.float64) * 1.5
    return split_spline_params(params, K)


def expected_knots(unnormalized: torch.Tensor) -> torch.Tensor:
    """Knot positions recomputed from the NSF / nflows parameterisation."""
    sizes = MIN_SIZE + (1 - MIN_SIZE * K) * torch.softmax(unnormalized, dim=-1)
    cum = torch.cat([torch.zeros_like(sizes[..., :1]), sizes.cumsum(-1)], dim=-1)
    return 2 * BOUND * cum - BOUND


def spline(x, params, inverse=False):
    return rational_quadratic_spline(x, *params, inverse=inverse, tail_bound=BOUND)


def test_roundtrip_inside_and_tails():
    x = torch.linspace(-5, 5, 301, dtype=torch.float64).reshape(-1, 1).expand(-1, 3)
    params = random_params(301, 3)
    y, logdet = spline(x, params)
    x_rec, logdet_inv = spline(y, params, inverse=True)
    assert (x_rec - x).abs().max() < 1e-10
    assert (logdet + logdet_inv).abs().max() < 1e-10


def test_logdet_matches_autograd_derivative():
    x = torch.linspace(-4, 4, 201, dtype=torch.float64).requires_grad_()
    params = random_params(201, seed=1)
    y, logdet = spline(x, params)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert (logdet - grad.log()).abs().max() < 1e-8

    z = torch.linspace(-4, 4, 201, dtype=torch.float64).requires_grad_()
    x_back, logdet_inv = spline(z, params, inverse=True)
    (grad_inv,) = torch.autograd.grad(x_back.sum(), z)
    assert (logdet_inv - grad_inv.log()).abs().max() < 1e-7


def test_identity_in_tails():
    x = torch.tensor([-10.0, -3.5, -3.0 - 1e-6, 3.0 + 1e-6, 4.0, 50.0], dtype=torch.float64)
    params = random_params(6, seed=2)
    for inverse in (False, True):
        y, logdet = spline(x, params, inverse=inverse)
        assert torch.equal(y, x)
        assert torch.equal(logdet, torch.zeros_like(x))


def test_exactly_at_tail_bound():
    x = torch.tensor([-BOUND, BOUND], dtype=torch.float64)
    params = random_params(2, seed=3)
    for inverse in (False, True):
        y, logdet = spline(x, params, inverse=inverse)
        assert torch.allclose(y, x, atol=1e-12)
        # The boundary derivatives are 1, so the spline joins the identity tails smoothly.
        assert logdet.abs().max() < 1e-6


def test_interior_knots_map_to_knots_with_their_derivatives():
    widths, heights, derivatives = random_params(4, seed=4)
    x_knots = expected_knots(widths)[:, 1:-1]  # (4, K-1) interior knots
    y_knots = expected_knots(heights)[:, 1:-1]
    d_knots = MIN_SIZE + F.softplus(derivatives)
    per_knot = (widths[:, None].expand(-1, K - 1, -1), heights[:, None].expand(-1, K - 1, -1),
                derivatives[:, None].expand(-1, K - 1, -1))
    y, logdet = spline(x_knots, per_knot)
    assert (y - y_knots).abs().max() < 1e-12
    assert (logdet - d_knots.log()).abs().max() < 1e-10
    x, logdet_inv = spline(y_knots, per_knot, inverse=True)
    assert (x - x_knots).abs().max() < 1e-12
    assert (logdet_inv + d_knots.log()).abs().max() < 1e-10


def test_monotonic():
    x = torch.linspace(-3.5, 3.5, 2001, dtype=torch.float64)
    w, h, d = random_params(1, seed=5)
    y, _ = spline(x, (w.expand(2001, -1), h.expand(2001, -1), d.expand(2001, -1)))
    assert (y.diff() > 0).all()


def test_identity_parameters_give_identity():
    x = torch.linspace(-4, 4, 50)
    params = split_spline_params(identity_spline_params(K).expand(50, -1), K)
    y, logdet = spline(x, params)
    assert (y - x).abs().max() < 1e-5
    assert logdet.abs().max() < 1e-5


@pytest.mark.parametrize("inverse", [False, True])
def test_finite_values_and_gradients_far_outside(inverse):
    x = torch.tensor([-1e4, -5.0, 0.3, 5.0, 1e4], requires_grad=True)
    params = [p.float().requires_grad_() for p in random_params(5, seed=6)]
    y, logdet = spline(x, params, inverse=inverse)
    (y.sum() + logdet.sum()).backward()
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in params)
    assert x.grad[[0, 1, 3, 4]].eq(1).all()


def test_rejects_too_many_bins_for_min_width():
    with pytest.raises(ValueError):
        widths = torch.zeros(2, 2000)
        rational_quadratic_spline(torch.zeros(2), widths, widths, torch.zeros(2, 1999))


def randomize_(module: torch.nn.Module, std: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            torch.nn.init.normal_(p, std=std)


def test_rqspline_module():
    torch.manual_seed(0)
    layer = RQSpline(3, num_bins=6, tail_bound=2.0).double()
    x = torch.randn(8, 3, dtype=torch.float64) * 2
    z, logdet = layer(x)
    assert torch.allclose(z, x) and logdet.abs().max() < 1e-6  # identity at initialisation
    randomize_(layer, std=1.0)
    z, _ = layer(x)
    assert (z - x).abs().max() > 1e-2
    assert roundtrip_max_abs_err(layer, x) < 1e-10
    assert logdet_max_abs_err(layer, x) < 1e-8


def test_rqspline_float32_roundtrip():
    torch.manual_seed(1)
    layer = RQSpline(4)
    randomize_(layer, std=1.0)
    x = torch.randn(64, 4) * 3
    assert roundtrip_max_abs_err(layer, x) < 1e-4
    assert logdet_max_abs_err(layer, x) < 1e-4
    assert math.isfinite(layer(x)[1].sum().item())


@pytest.mark.parametrize("inverse", [False, True])
def test_outputs_without_logdet_are_the_same(inverse):
    """Sampling asks for outputs only; they are the very values the log-det path returns."""
    torch.manual_seed(3)
    params = torch.randn(7, 5, 3 * 4 - 1, dtype=torch.float64) * 2
    x = torch.randn(7, 5, dtype=torch.float64) * 3  # some inputs in the linear tails
    y, logabsdet = packed_rational_quadratic_spline(x, params, 4, inverse=inverse)
    y_only, none = packed_rational_quadratic_spline(x, params, 4, inverse=inverse, with_logdet=False)
    assert none is None and logabsdet is not None
    assert torch.equal(y_only, y)


def test_shared_rqspline_has_one_set_of_knots_and_is_exact():
    """``shared=True``: every feature goes through the same spline (the funnels authors' F-MLP
    activation); round trip and log-det against autograd."""
    torch.manual_seed(0)
    layer = RQSpline(5, num_bins=10, tail_bound=2.0, shared=True).double()
    assert layer.params.shape == (1, 29)
    with torch.no_grad():
        layer.params.normal_(std=0.7)
    x = torch.randn(16, 5, dtype=torch.float64) * 1.5
    assert roundtrip_max_abs_err(layer, x) < 1e-10
    assert logdet_max_abs_err(layer, x) < 1e-9
    z, _ = layer(x)
    column = layer(x[:, :1].repeat(1, 5))[0]  # one function of each feature, the same for all
    assert torch.allclose(column, column[:, :1].expand(-1, 5)) and not torch.allclose(z, x)
