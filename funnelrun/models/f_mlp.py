"""F-MLP for vectors: an MLP whose weight layers are MLP funnels (funnels paper §3, A.6, Table 1).

Each layer is a fixed random permutation, then a weight layer, then a rational-quadratic spline
activation (10 bins, tail bound 2 in A.6). A weight layer that reduces the width is a
:class:`~funnelrun.surjections.funnel_mlp.FunnelMLP` (W x = R x_+ + W' x_- + b, p_phi a
diagonal-Gaussian ansatz: three ReLU layers of ``conditional_hidden_features`` units); one that keeps
the width is the LU-parameterised R alone. Every layer is exact, so the whole model is.

The default schedule of output widths is A.6's for an input of D and a latent of L features: two
width-preserving layers, one to ceil((D + L) / 2), one preserving, one to L, three preserving,

    D -> D -> D -> ceil((D + L) / 2) -> ceil((D + L) / 2) -> L -> L -> L -> L,

where a layer whose output width equals its input width is a preserving layer (for example on 2-D
data with L = 1 the middle width is 2). ``latent_dim = D`` is allowed: no funnel, an MLP flow with
spline activations, a bijection. ``widths`` replaces the schedule by any non-increasing list of
output widths ending at ``latent_dim``.

``shared_spline`` gives each activation one set of knots for all its features, and
``last_activation=False`` leaves the activation out after the last layer: both as in the funnels
authors' image F-MLP (``experiments/image_generation.py``, ``funnelMLP``), whose parameter count is
Table 8's (see ``conf/experiment/table4/mnist_f_mlp_*.yaml``).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from funnelrun.distributions.conditional import ConditionalDiagonalGaussian
from funnelrun.models.flow import Flow
from funnelrun.surjections.funnel_mlp import FunnelMLP
from funnelrun.transforms.base import Transform
from funnelrun.transforms.flatten import Flatten
from funnelrun.transforms.linear import LULinear, RandomPermutation
from funnelrun.transforms.splines import RQSpline


def a6_widths(features: int, latent_dim: int) -> list[int]:
    """Output widths of the eight F-MLP layers of funnels A.6 from ``features`` to ``latent_dim``."""
    middle = (features + latent_dim + 1) // 2
    return [features, features, middle, middle, latent_dim, latent_dim, latent_dim, latent_dim]


def _check_widths(features: int, latent_dim: int, widths: Sequence[int]) -> None:
    if not 1 <= latent_dim <= features:
        raise ValueError(
            f"model=f_mlp on {features}-D data needs latent_dim between 1 and {features} "
            f"({features}: no funnel, a bijective MLP flow); got {latent_dim}"
        )
    if not widths or widths[-1] != latent_dim:
        raise ValueError(f"model.widths={list(widths)} must be non-empty and end at latent_dim={latent_dim}")
    previous = features
    for width in widths:
        if width > previous:
            raise ValueError(
                f"model.widths={list(widths)} grows from {previous} to {width} (data: {features}-D): MLP "
                "funnels only keep or reduce the width (funnels paper A.7.2)"
            )
        previous = width


def f_mlp_layer(
    in_features: int,
    out_features: int,
    *,
    seed: int,
    num_bins: int,
    tail_bound: float,
    conditional_hidden_features: int,
    shared_spline: bool = False,
    activation: bool = True,
) -> list[Transform]:
    """Permutation -> weight layer (FunnelMLP, or LULinear when the width is kept) -> [RQ spline]."""
    if out_features == in_features:
        weight: Transform = LULinear(in_features)
    else:
        dropped = in_features - out_features
        p_dropped = ConditionalDiagonalGaussian(
            dropped, context_features=out_features, hidden_features=conditional_hidden_features
        )
        weight = FunnelMLP(in_features, out_features, p_dropped)
    layers = [RandomPermutation(in_features, seed=seed), weight]
    if activation:
        layers.append(RQSpline(out_features, num_bins=num_bins, tail_bound=tail_bound, shared=shared_spline))
    return layers


def build_f_mlp(
    data_shape: tuple[int, ...],
    *,
    latent_dim: int,
    widths: Optional[Sequence[int]] = None,
    num_bins: int = 10,
    tail_bound: float = 2.0,
    conditional_hidden_features: int = 128,
    shared_spline: bool = False,
    last_activation: bool = True,
) -> Flow:
    """An F-MLP from vectors of ``data_shape == (D,)`` to a ``latent_dim``-D standard normal; images
    (C, H, W) are flattened first (funnels paper A.9: widths 784 -> 512, 256, 128, 64, L).

    ``widths``: the output width of each layer (default: :func:`a6_widths`). Raises ``ValueError``
    for a latent size outside 1..D or widths that grow or do not end at ``latent_dim``.
    """
    if len(data_shape) == 3:  # images: flatten, then the vector F-MLP (funnels paper A.9)
        vector = build_f_mlp((math.prod(data_shape),), latent_dim=latent_dim, widths=widths, num_bins=num_bins,
                             tail_bound=tail_bound, conditional_hidden_features=conditional_hidden_features,
                             shared_spline=shared_spline, last_activation=last_activation)
        return Flow([Flatten(data_shape), *vector.transform.transforms], data_shape)
    (features,) = data_shape
    widths = a6_widths(features, latent_dim) if widths is None else list(widths)
    _check_widths(features, latent_dim, widths)
    layers: list[Transform] = []
    for seed, (in_features, out_features) in enumerate(zip([features, *widths], widths)):
        layers += f_mlp_layer(
            in_features,
            out_features,
            seed=seed,
            num_bins=num_bins,
            tail_bound=tail_bound,
            conditional_hidden_features=conditional_hidden_features,
            shared_spline=shared_spline,
            activation=last_activation or seed < len(widths) - 1,
        )
    return Flow(layers, data_shape)
