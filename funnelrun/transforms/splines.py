"""Monotonic rational-quadratic splines with linear tails (Durkan et al. 2019, "Neural Spline Flows").

On [-B, B] the map is a monotonic rational-quadratic spline with K bins (NSF Sec. 3.1); outside it is
the identity, which the unit boundary derivatives make continuously differentiable. The
parameterisation is that of nflows' ``unconstrained_rational_quadratic_spline(tails="linear")``, so
both give the same numbers for the same unnormalised parameters.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from funnelrun.transforms.base import Transform, sum_except_batch

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def spline_params_per_feature(num_bins: int) -> int:
    """Unnormalised parameters per element: K widths, K heights, K - 1 interior derivatives."""
    return 3 * num_bins - 1


def _unit_derivative_logit(min_derivative: float) -> float:
    """The unnormalised derivative whose constrained value min_derivative + softplus(.) is 1."""
    return math.log(math.expm1(1.0 - min_derivative))


def identity_spline_params(num_bins: int, min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> Tensor:
    """Unnormalised parameters (3K-1,) of the identity: equal bins, unit interior derivatives."""
    return torch.cat(
        [
            torch.zeros(2 * num_bins),
            torch.full((num_bins - 1,), _unit_derivative_logit(min_derivative)),
        ]
    )


def split_spline_params(params: Tensor, num_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split (..., 3K-1) parameters into unnormalised widths, heights and derivatives."""
    return params[..., :num_bins], params[..., num_bins : 2 * num_bins], params[..., 2 * num_bins :]


def _knots(unnormalized: Tensor, min_size: float, bound: float) -> tuple[Tensor, Tensor]:
    """Knot positions (..., K+1) on [-bound, bound] and bin sizes (..., K) from unnormalised sizes."""
    num_bins = unnormalized.shape[-1]
    sizes = min_size + (1 - min_size * num_bins) * torch.softmax(unnormalized, dim=-1)
    knots = F.pad(torch.cumsum(sizes, dim=-1), pad=(1, 0), value=0.0)
    knots = 2 * bound * knots - bound
    edge = torch.full_like(knots[..., :1], bound)
    knots = torch.cat([-edge, knots[..., 1:-1], edge], dim=-1)
    return knots, knots[..., 1:] - knots[..., :-1]


def _gather(values: Tensor, bin_idx: Tensor) -> Tensor:
    """values[..., bin_idx] per element; ``values`` broadcasts against ``bin_idx`` (..., 1)."""
    values = values.expand(*bin_idx.shape[:-1], values.shape[-1])
    return values.gather(-1, bin_idx)[..., 0]


def _log_derivative(theta: Tensor, delta: Tensor, d_k: Tensor, d_k1: Tensor) -> Tensor:
    """log of the spline derivative at relative position theta in its bin (NSF eq. 5)."""
    theta_one_minus_theta = theta * (1 - theta)
    denominator = delta + (d_k + d_k1 - 2 * delta) * theta_one_minus_theta
    numerator = delta.pow(2) * (
        d_k1 * theta.pow(2) + 2 * delta * theta_one_minus_theta + d_k * (1 - theta).pow(2)
    )
    return torch.log(numerator) - 2 * torch.log(denominator)


def rational_quadratic_spline(
    inputs: Tensor,
    unnormalized_widths: Tensor,
    unnormalized_heights: Tensor,
    unnormalized_derivatives: Tensor,
    inverse: bool = False,
    tail_bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """Elementwise rational-quadratic spline on [-B, B], identity outside (NSF Sec. 3.1, App. A).

    ``unnormalized_widths`` and ``unnormalized_heights`` are (..., K), ``unnormalized_derivatives``
    (..., K-1), broadcastable against ``inputs`` with a trailing bin axis. Returns the outputs and
    the per-element log|d output / d input|, both shaped like ``inputs``. Every element goes through
    the spline at its input clamped into [-B, B] and the tails are selected afterwards, so there is
    no data-dependent indexing and inputs far outside the bound keep finite gradients.
    """
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width * num_bins > 1.0 or min_bin_height * num_bins > 1.0:
        raise ValueError("minimal bin width/height too large for the number of bins")
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    clamped = inputs.clamp(-tail_bound, tail_bound)

    cumwidths, widths = _knots(unnormalized_widths, min_bin_width, tail_bound)
    cumheights, heights = _knots(unnormalized_heights, min_bin_height, tail_bound)
    boundary = _unit_derivative_logit(min_derivative)
    derivatives = min_derivative + F.softplus(
        F.pad(unnormalized_derivatives, pad=(1, 1), value=boundary)
    )

    # Bin k holds knot_k <= input < knot_{k+1}; the last bin also holds the right edge.
    knots = cumheights if inverse else cumwidths
    bin_idx = (clamped[..., None] >= knots).sum(dim=-1, keepdim=True).sub(1).clamp(0, num_bins - 1)

    x_k = _gather(cumwidths, bin_idx)
    width = _gather(widths, bin_idx)
    y_k = _gather(cumheights, bin_idx)
    height = _gather(heights, bin_idx)
    delta = _gather(heights / widths, bin_idx)
    d_k = _gather(derivatives[..., :-1], bin_idx)
    d_k1 = _gather(derivatives[..., 1:], bin_idx)

    if inverse:
        # Solve a theta^2 + b theta + c = 0 for theta in [0, 1] (NSF eqs. 6-8), stable root form.
        offset = clamped - y_k
        curvature = d_k + d_k1 - 2 * delta
        a = offset * curvature + height * (delta - d_k)
        b = height * d_k - offset * curvature
        c = -delta * offset
        discriminant = (b.pow(2) - 4 * a * c).clamp(min=0.0)
        theta = (2 * c) / (-b - torch.sqrt(discriminant))
        outputs = theta * width + x_k
        logabsdet = -_log_derivative(theta, delta, d_k, d_k1)
    else:
        theta = (clamped - x_k) / width
        theta_one_minus_theta = theta * (1 - theta)
        numerator = height * (delta * theta.pow(2) + d_k * theta_one_minus_theta)
        denominator = delta + (d_k + d_k1 - 2 * delta) * theta_one_minus_theta
        outputs = y_k + numerator / denominator
        logabsdet = _log_derivative(theta, delta, d_k, d_k1)

    return torch.where(inside, outputs, inputs), torch.where(inside, logabsdet, 0.0)


class RQSpline(Transform):
    """Unconditional elementwise rational-quadratic spline with learned per-feature knots (NSF).

    Starts as the identity. Used for 1-D flows and as the invertible activation of an F-MLP.
    """

    def __init__(self, features: int, num_bins: int = 8, tail_bound: float = 3.0):
        super().__init__()
        self.num_bins = num_bins
        self.tail_bound = tail_bound
        self.params = nn.Parameter(identity_spline_params(num_bins).repeat(features, 1))

    def _spline(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        widths, heights, derivatives = split_spline_params(self.params, self.num_bins)
        return rational_quadratic_spline(
            x, widths, heights, derivatives, inverse=inverse, tail_bound=self.tail_bound
        )

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        z, logabsdet = self._spline(x, inverse=False)
        return z, sum_except_batch(logabsdet)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return self._spline(z, inverse=True)[0]
