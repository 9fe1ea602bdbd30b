"""F-NSF for vectors: an NSF with one step replaced by a funnel layer (funnels paper §2, A.5, A.6).

``funnel_level`` flow steps run at full width, then the funnel step drops ``dim_reduction``
coordinates (equivalently ``latent_dim = D - dim_reduction``), then the remaining
``num_steps - 1 - funnel_level`` steps run at the reduced width (``funnel_level=None``: the funnel
replaces the last step). As in the funnels authors' ``experiments/uci.py``, the funnel step opens like
every other step, with the permutation and LU-linear (and ActNorm where the steps have one), so
what is dropped is a learned linear combination, never raw coordinates. Inside the funnel, F maps
*every* kept coordinate conditioned on the dropped ones: for coupling steps a coupling layer over all
D features whose identity features are dropped (:class:`~funnelrun.surjections.coupling_funnel.CouplingFunnel`,
with the unconditional spline on them where the couplings have one), for autoregressive steps a
MADE spline layer of the kept part with the dropped part as context (:class:`~funnelrun.surjections.funnel.Funnel`).
p_phi(x_dropped | z) is a conditional flow ("flow": the same kind of flow with half the steps and a
third of the hidden features, A.6; closed by an LU-linear and with the steps' dropout, as the authors'
code) or a diagonal-Gaussian ansatz from an MLP ("gaussian": three ReLU layers of 128 units, A.6).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from funnelrun.distributions.conditional import Conditional, ConditionalDiagonalGaussian, ConditionalFlow
from funnelrun.models.flow import Flow
from funnelrun.models.image_f_nsf import build_image_f_nsf
from funnelrun.models.nsf import LinearKind, SplineKind, flow_steps, spline_layer, step_mixing
from funnelrun.options import ConditionalKind
from funnelrun.surjections.coupling_funnel import CouplingFunnel, dropped_first_mask
from funnelrun.surjections.funnel import Funnel
from funnelrun.transforms.base import CompositeTransform, Transform
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling
from funnelrun.transforms.linear import LULinear


def resolve_dim_reduction(features: int, latent_dim: Optional[int], dim_reduction: Optional[int]) -> int:
    """How many coordinates the funnel drops, from either ``latent_dim`` or ``dim_reduction``."""
    if latent_dim is not None and dim_reduction is not None and features - latent_dim != dim_reduction:
        raise ValueError(
            f"latent_dim={latent_dim} and dim_reduction={dim_reduction} disagree for {features}-D data; "
            "set only one of them (the other to null)"
        )
    dropped = features - latent_dim if latent_dim is not None else dim_reduction
    if dropped is None:
        raise ValueError("a funnel model needs model.latent_dim or model.dim_reduction")
    if not 0 < dropped < features:
        raise ValueError(
            f"a funnel on {features}-D data must drop between 1 and {features - 1} dimensions "
            f"(latent_dim between 1 and {features - 1}); got a reduction of {dropped}"
        )
    return dropped


def build_f_nsf(
    data_shape: tuple[int, ...],
    *,
    num_steps: int = 10,
    transform: SplineKind | str = SplineKind.coupling,
    hidden_features: int = 256,
    num_blocks: int = 2,
    num_bins: int = 8,
    tail_bound: float = 3.0,
    dropout: float = 0.0,
    batch_norm: bool = False,
    linear: LinearKind | str = LinearKind.lu,
    latent_dim: Optional[int] = None,
    dim_reduction: Optional[int] = None,
    funnel_level: Optional[int] = 0,
    conditional: ConditionalKind | str = ConditionalKind.flow,
    conditional_steps: Optional[int] = None,
    conditional_hidden_features: Optional[int] = None,
    conditional_bins: Optional[int] = None,
    actnorm: bool = False,
    unconditional_transform: bool = False,
    image: Optional[Mapping[str, Any]] = None,
) -> Flow:
    """F-NSF on vectors of ``data_shape == (D,)``; ``transform="affine"`` with ``actnorm=True`` is
    F-Glow (:mod:`funnelrun.models.glow`). ``actnorm`` and ``unconditional_transform`` (NSF's spline on
    the identity features of each coupling) also apply to the conditional flow.

    On images ``data_shape == (C, H, W)`` it is the convolutional F-NSF of
    :mod:`funnelrun.models.image_f_nsf` with the ``image`` settings; of the other arguments only
    ``latent_dim`` (or ``dim_reduction``) and ``transform="affine"`` (F-Glow) are read."""
    if len(data_shape) == 3:
        if dim_reduction is not None:
            features = math.prod(data_shape)
            latent_dim = features - resolve_dim_reduction(features, latent_dim, dim_reduction)
        return build_image_f_nsf(data_shape, affine=SplineKind(transform) is SplineKind.affine,
                                 latent_dim=latent_dim, image=image)
    (features,) = data_shape
    dropped = resolve_dim_reduction(features, latent_dim, dim_reduction)
    kept = features - dropped
    if funnel_level is None:
        funnel_level = num_steps - 1
    if not 0 <= funnel_level < num_steps:
        raise ValueError(
            f"funnel_level={funnel_level} must be between 0 and num_steps - 1 = {num_steps - 1}: "
            "it counts the flow steps before the funnel, which replaces one of the num_steps steps"
        )
    spline: dict[str, Any] = dict(
        kind=transform,
        hidden_features=hidden_features,
        num_blocks=num_blocks,
        num_bins=num_bins,
        tail_bound=tail_bound,
        dropout=dropout,
        batch_norm=batch_norm,
        unconditional=unconditional_transform,
    )
    layers = flow_steps(funnel_level, features, linear=linear, seed=0, actnorm=actnorm, **spline)

    if ConditionalKind(conditional) is ConditionalKind.gaussian:
        p_dropped: Conditional = ConditionalDiagonalGaussian(dropped, context_features=kept)
    else:
        cond_spline: dict[str, Any] = dict(
            spline,
            hidden_features=conditional_hidden_features or max(hidden_features // 3, 8),
            num_bins=conditional_bins or num_bins,
        )
        steps = conditional_steps or max(num_steps // 2, 1)
        cond_layers = flow_steps(steps, dropped, linear=linear, actnorm=actnorm, context_features=kept, **cond_spline)
        if LinearKind(linear) is LinearKind.lu:
            cond_layers.append(LULinear(dropped))
        p_dropped = ConditionalFlow(dropped, CompositeTransform(cond_layers))
    layers += step_mixing(features, linear=linear, seed=funnel_level, actnorm=actnorm)
    layers.append(funnel_layer(features, dropped, p_dropped, spline))

    layers += flow_steps(num_steps - 1 - funnel_level, kept, linear=linear, seed=1000, actnorm=actnorm,
                         first_index=funnel_level + 1, **spline)
    if LinearKind(linear) is LinearKind.lu:
        layers.append(LULinear(kept))
    return Flow(layers, data_shape)


def funnel_layer(features: int, dropped: int, p_dropped: Any, spline: Mapping[str, Any]) -> Transform:
    """The funnel of a funnel step: a coupling funnel (spline or affine coupling over all ``features``,
    the first ``dropped`` its identity features) or, for autoregressive steps, a funnel whose F is a
    MADE spline layer of the kept part conditioned on the dropped part."""
    kind = SplineKind(spline["kind"])
    kept = features - dropped
    if kind is SplineKind.autoregressive:
        kept_map = spline_layer(features=kept, context_features=dropped, **spline)
        return Funnel(features, dropped, p_dropped, kept_map)
    mask = dropped_first_mask(features, dropped)
    net = dict(hidden_features=spline["hidden_features"], num_blocks=spline["num_blocks"], dropout=spline["dropout"])
    if kind is SplineKind.affine:
        coupling: AffineCoupling | RQSplineCoupling = AffineCoupling(features, mask, **net)
    else:
        coupling = RQSplineCoupling(features, mask, num_bins=spline["num_bins"], tail_bound=spline["tail_bound"],
                                    use_batch_norm=spline["batch_norm"], unconditional=spline["unconditional"], **net)
    return CouplingFunnel(coupling, p_dropped)
