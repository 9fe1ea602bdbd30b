"""Monotonic rational-quadratic splines with linear tails (Durkan et al. 2019, "Neural Spline Flows").

On [-B, B] the map is a monotonic rational-quadratic spline with K bins (NSF Sec. 3.1); outside it is
the identity, which the unit boundary derivatives make continuously differentiable. The
parameterisation is that of nflows' ``unconstrained_rational_quadratic_spline(tails="linear")``, so
both give the same numbers for the same unnormalised parameters.
"""
from __future__ import annotations

import math
from typing import Optional, cast

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


def _log_derivative(
    theta: Tensor, theta_one_minus_theta: Tensor, delta: Tensor, d_k: Tensor, d_k1: Tensor, denominator: Tensor
) -> Tensor:
    """log of the spline derivative at relative position theta in its bin (NSF eq. 5).

    ``theta_one_minus_theta`` = theta (1 - theta) and ``denominator`` = delta + (d_k + d_k1 -
    2 delta) theta (1 - theta) are the values the caller already computed for the spline itself;
    taking them instead of recomputing them evaluates the same expressions once, so the values are
    the same, with fewer small tensor operations forward and backward (the spline is overhead-bound
    at tabular sizes).
    """
    numerator = delta.pow(2) * (
        d_k1 * theta.pow(2) + 2 * delta * theta_one_minus_theta + d_k * (1 - theta).pow(2)
    )
    return torch.log(numerator) - 2 * torch.log(denominator)


def _gather_bins(table: Tensor, bin_idx: Tensor, shape: torch.Size) -> Tensor:
    """``out[q, j, e] = table[q, bin_idx[j, e], e]``: table (Q, K, *S) with S broadcasting to
    ``shape``, bin_idx (J, *shape) in [0, K). Returns (Q, J, *shape).

    When the table already has one entry per element (conditioner outputs) this is a plain gather.
    When it is shared across elements (an :class:`RQSpline`'s per-feature knots, broadcast over the
    batch), gathering from the table *expanded* to ``shape`` would make the backward allocate and
    zero a (Q, K, *shape) gradient (K times the size of the output) and then reduce it back; an
    F-MLP step spent most of its time there. Gathering instead from the flattened (Q, K * |S|)
    table at index ``bin * |S| + (position of the element's parameters in S)`` reads exactly the
    same entries, and its backward scatter-adds straight into a (Q, K * |S|) gradient: the same
    values and the same gradient (sums of the same terms, in another order).
    """
    queries = bin_idx.shape[0]
    if tuple(table.shape[2:]) == tuple(shape):
        return table.gather(1, bin_idx[None].expand(table.shape[0], *bin_idx.shape))
    cells = math.prod(table.shape[2:])
    position = torch.arange(cells, device=table.device).view(table.shape[2:]).expand(shape)
    index = (bin_idx * cells + position).reshape(1, -1).expand(table.shape[0], -1)
    return table.reshape(table.shape[0], -1).gather(1, index).view(table.shape[0], queries, *shape)


def _bin_major_spline(
    inputs: Tensor,
    unnormalized_sizes: Tensor,
    unnormalized_derivatives: Tensor,
    inverse: bool,
    tail_bound: float,
    min_bin_width: float,
    min_bin_height: float,
    min_derivative: float,
    with_logdet: bool = True,
) -> tuple[Tensor, Optional[Tensor]]:
    """The spline with the bin axis leading: sizes (2, K, *S) = (widths, heights), derivatives (K-1, *S).
    ``with_logdet=False`` (sampling) skips the log-derivative and returns None in its place.

    ``S`` broadcasts against ``inputs.shape``. Keeping the bins first is what makes this fast on
    CPU: softmax and cumsum over a leading axis are vectorised across elements, whereas over a
    trailing axis of 4-10 bins they run element by element (about 10x slower for a softmax). The
    per-bin quantities come from two gathers (knots and derivatives at bins k and k+1), with no
    per-bin table built first; no data-dependent indexing.
    """
    num_bins = unnormalized_sizes.shape[1]
    if min_bin_width * num_bins > 1.0 or min_bin_height * num_bins > 1.0:
        raise ValueError("minimal bin width/height too large for the number of bins")
    missing = inputs.dim() - (unnormalized_sizes.dim() - 2)
    if missing > 0:  # align parameters shaped like the trailing dimensions of the inputs
        unnormalized_sizes = unnormalized_sizes.reshape(
            2, num_bins, *[1] * missing, *unnormalized_sizes.shape[2:]
        )
        unnormalized_derivatives = unnormalized_derivatives.reshape(
            num_bins - 1, *[1] * missing, *unnormalized_derivatives.shape[1:]
        )
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    clamped = inputs.clamp(-tail_bound, tail_bound)

    # Knots (2, K+1, *S) on [-B, B]: B * (2 * cumsum(sizes) - 1), edges pinned to -B and B.
    softmax = torch.softmax(unnormalized_sizes, dim=1)
    if min_bin_width == min_bin_height:
        sizes = min_bin_width + (1 - min_bin_width * num_bins) * softmax
    else:
        minimum = softmax.new_tensor([min_bin_width, min_bin_height]).view(2, *[1] * (softmax.dim() - 1))
        sizes = minimum + (1 - minimum * num_bins) * softmax
    interior = 2 * tail_bound * torch.cumsum(sizes[:, : num_bins - 1], dim=1) - tail_bound
    edge = interior.new_full((), tail_bound).expand(2, 1, *interior.shape[2:])
    knots = torch.cat([-edge, interior, edge], dim=1)
    boundary = unnormalized_derivatives.new_full((), _unit_derivative_logit(min_derivative))
    boundary = boundary.expand(1, *unnormalized_derivatives.shape[1:])
    derivatives = min_derivative + F.softplus(
        torch.cat([boundary, unnormalized_derivatives, boundary], dim=0)
    )

    # Bin k holds knot_k <= input < knot_{k+1}; the last bin also holds the right edge. Counting
    # the interior knots at or below the (clamped) input gives k in [0, K-1] directly.
    interior_knots = knots[1 if inverse else 0, 1:num_bins]
    bin_idx = (clamped[None] >= interior_knots).sum(dim=0)

    # Two gathers at bins k and k+1: knots (x_k, x_k+1, y_k, y_k+1) and derivatives (d_k, d_k+1).
    # Width and height are differences of the gathered knots: the same float operations as
    # differencing all K bins first, done only for the bin each element falls in.
    shape = torch.broadcast_shapes(inputs.shape, knots.shape[2:])
    edges = torch.stack([bin_idx, bin_idx + 1])
    (x_k, x_k1), (y_k, y_k1) = _gather_bins(knots, edges, shape).unbind(0)
    d_k, d_k1 = _gather_bins(derivatives[None], edges, shape)[0]
    width, height = x_k1 - x_k, y_k1 - y_k
    delta = height / width

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
        if not with_logdet:
            return torch.where(inside, outputs, inputs), None
        theta_one_minus_theta = theta * (1 - theta)
        denominator = delta + curvature * theta_one_minus_theta
        logabsdet = -_log_derivative(theta, theta_one_minus_theta, delta, d_k, d_k1, denominator)
    else:
        theta = (clamped - x_k) / width
        theta_one_minus_theta = theta * (1 - theta)
        numerator = height * (delta * theta.pow(2) + d_k * theta_one_minus_theta)
        denominator = delta + (d_k + d_k1 - 2 * delta) * theta_one_minus_theta
        outputs = y_k + numerator / denominator
        if not with_logdet:
            return torch.where(inside, outputs, inputs), None
        logabsdet = _log_derivative(theta, theta_one_minus_theta, delta, d_k, d_k1, denominator)

    return torch.where(inside, outputs, inputs), torch.where(inside, logabsdet, 0.0)


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
    sizes = torch.stack(torch.broadcast_tensors(unnormalized_widths, unnormalized_heights))
    return cast(tuple[Tensor, Tensor], _bin_major_spline(  # with_logdet: the log-det is set
        inputs,
        sizes.movedim(-1, 1),
        unnormalized_derivatives.movedim(-1, 0),
        inverse,
        tail_bound,
        min_bin_width,
        min_bin_height,
        min_derivative,
    ))


def packed_rational_quadratic_spline(
    inputs: Tensor,
    params: Tensor,
    num_bins: int,
    inverse: bool = False,
    tail_bound: float = 3.0,
    with_logdet: bool = True,
) -> tuple[Tensor, Optional[Tensor]]:
    """``rational_quadratic_spline`` of ``split_spline_params(params, num_bins)``, params (..., 3K-1).

    The layout conditioner networks produce; one transposing copy puts the bins first.
    ``with_logdet=False``: outputs only (the log-det is None), for sampling.
    """
    bin_major = params.movedim(-1, 0).contiguous()
    return _bin_major_spline(
        inputs,
        bin_major[: 2 * num_bins].unflatten(0, (2, num_bins)),
        bin_major[2 * num_bins :],
        inverse,
        tail_bound,
        DEFAULT_MIN_BIN_WIDTH,
        DEFAULT_MIN_BIN_HEIGHT,
        DEFAULT_MIN_DERIVATIVE,
        with_logdet,
    )


class RQSpline(Transform):
    """Unconditional elementwise rational-quadratic spline with learned knots (NSF).

    Starts as the identity. Used for 1-D flows, as the invertible activation of an F-MLP, and on the
    identity features of an NSF coupling layer. ``shared=True`` gives every feature the same knots
    (one set of 3K - 1 parameters): the activation of the funnels authors' image F-MLP, whose
    parameter count is funnels Table 8's (:mod:`funnelrun.models.f_mlp`); else each feature has its own.
    """

    def __init__(self, features: int, num_bins: int = 8, tail_bound: float = 3.0, shared: bool = False):
        super().__init__()
        self.num_bins = num_bins
        self.tail_bound = tail_bound
        self.features = features
        self.shared = shared
        self.params = nn.Parameter(identity_spline_params(num_bins).repeat(1 if shared else features, 1))

    def _spline(self, x: Tensor, inverse: bool, with_logdet: bool = True) -> tuple[Tensor, Optional[Tensor]]:
        params = self.params.expand(x.shape[-1], -1) if self.shared else self.params
        return packed_rational_quadratic_spline(
            x, params, self.num_bins, inverse=inverse, tail_bound=self.tail_bound, with_logdet=with_logdet
        )

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        z, logabsdet = cast(tuple[Tensor, Tensor], self._spline(x, inverse=False))  # with its log-det
        return z, sum_except_batch(logabsdet)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return self._spline(z, inverse=True, with_logdet=False)[0]

    def extra_repr(self) -> str:
        return f"features={self.features}, num_bins={self.num_bins}, tail_bound={self.tail_bound}, shared={self.shared}"
