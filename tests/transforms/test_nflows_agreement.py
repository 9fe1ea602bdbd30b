"""funnelrun's rational-quadratic spline is nflows' reference spline (same math, same numbers).

nflows' ``unconstrained_rational_quadratic_spline(tails="linear")`` is the reference implementation
of Durkan et al. 2019; the throughput benchmark (scripts/bench_throughput.py) compares funnelrun with
nflows, so this test pins that both compute the same function of the same unnormalised parameters:
outputs, inverses and log-determinants, inside the bound and in the linear tails.

nflows is in the ``test`` extra (``make test`` installs it): a missing nflows is an error, not a skip.
"""
from __future__ import annotations

import pytest
import torch

try:
    from nflows.transforms.splines.rational_quadratic import unconstrained_rational_quadratic_spline
except ImportError as err:  # pragma: no cover - environment error, reported loudly
    raise ImportError(
        "tests/transforms/test_nflows_agreement.py needs nflows: pip install -c constraints.txt -e '.[test]'"
    ) from err

from funnelrun.transforms.splines import (
    identity_spline_params,
    packed_rational_quadratic_spline,
    rational_quadratic_spline,
    split_spline_params,
)

CASES = [(2, 1.0), (4, 3.0), (8, 3.0), (10, 2.0)]  # (bins, tail bound)


def _inputs_and_params(num_bins: int, bound: float, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rows = 257
    # A grid from beyond -B to beyond B (both edges exactly included) in every column.
    x = torch.linspace(-1.4 * bound, 1.4 * bound, rows, dtype=dtype)
    x = torch.cat([x, torch.tensor([-bound, bound], dtype=dtype)]).reshape(-1, 1).expand(-1, 3).contiguous()
    params = 2.0 * torch.randn(*x.shape, 3 * num_bins - 1, generator=g, dtype=dtype)
    return x, params


def _nflows(x, params, num_bins, bound, inverse):
    widths, heights, derivatives = split_spline_params(params, num_bins)
    return unconstrained_rational_quadratic_spline(
        x, widths, heights, derivatives, inverse=inverse, tails="linear", tail_bound=bound
    )


@pytest.mark.parametrize("num_bins,bound", CASES)
@pytest.mark.parametrize("inverse", [False, True])
def test_spline_matches_nflows_float64(num_bins, bound, inverse):
    x, params = _inputs_and_params(num_bins, bound, torch.float64)
    if inverse:  # invert points that the forward map actually produces (inside and tails)
        x = _nflows(x, params, num_bins, bound, inverse=False)[0]
    ref_out, ref_logdet = _nflows(x, params, num_bins, bound, inverse)

    # The inverse solves a quadratic that is ill-conditioned in very narrow bins: looser there.
    atol = 1e-9 if inverse else 1e-11
    out, logdet = rational_quadratic_spline(
        x, *split_spline_params(params, num_bins), inverse=inverse, tail_bound=bound
    )
    torch.testing.assert_close(out, ref_out, rtol=0, atol=atol)
    torch.testing.assert_close(logdet, ref_logdet, rtol=0, atol=1e-9)

    # The packed path that coupling and autoregressive layers use.
    out, logdet = packed_rational_quadratic_spline(x, params, num_bins, inverse=inverse, tail_bound=bound)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=atol)
    torch.testing.assert_close(logdet, ref_logdet, rtol=0, atol=1e-9)


@pytest.mark.parametrize("num_bins,bound", CASES)
def test_spline_matches_nflows_float32(num_bins, bound):
    x, params = _inputs_and_params(num_bins, bound, torch.float32, seed=1)
    for inverse in (False, True):
        ref_out, ref_logdet = _nflows(x, params, num_bins, bound, inverse)
        out, logdet = packed_rational_quadratic_spline(x, params, num_bins, inverse=inverse, tail_bound=bound)
        torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logdet, ref_logdet, rtol=1e-4, atol=1e-4)


def test_round_trip_through_nflows_inverse():
    """funnelrun forward, nflows inverse: back to the inputs, with opposite log-dets."""
    num_bins, bound = 8, 3.0
    x, params = _inputs_and_params(num_bins, bound, torch.float64, seed=2)
    y, logdet = packed_rational_quadratic_spline(x, params, num_bins, tail_bound=bound)
    x_back, logdet_back = _nflows(y, params, num_bins, bound, inverse=True)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-9)
    torch.testing.assert_close(logdet_back, -logdet, rtol=0, atol=1e-8)


def test_gradients_match_nflows():
    """Same function, so the same gradients with respect to inputs and parameters (inside the bound)."""
    num_bins, bound = 5, 3.0
    x, params = _inputs_and_params(num_bins, bound, torch.float64, seed=3)
    x = x.clamp(-0.9 * bound, 0.9 * bound)
    grads = []
    for spline in ("funnelrun", "nflows"):
        xi, pi = x.clone().requires_grad_(), params.clone().requires_grad_()
        if spline == "funnelrun":
            out, logdet = packed_rational_quadratic_spline(xi, pi, num_bins, tail_bound=bound)
        else:
            out, logdet = _nflows(xi, pi, num_bins, bound, inverse=False)
        (out.sum() + logdet.sum()).backward()
        grads.append((xi.grad, pi.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-9, atol=1e-9)


def test_identity_parameters_are_identity_in_both():
    num_bins, bound = 8, 3.0
    x = torch.linspace(-4, 4, 101, dtype=torch.float64).reshape(-1, 1)
    params = identity_spline_params(num_bins).to(torch.float64).expand(101, 1, -1).contiguous()
    out, logdet = packed_rational_quadratic_spline(x, params, num_bins, tail_bound=bound)
    ref_out, ref_logdet = _nflows(x, params, num_bins, bound, inverse=False)
    # identity_spline_params is float32: its unit derivatives are 1 to float32 precision.
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(logdet, ref_logdet, rtol=0, atol=1e-12)
