"""Neural spline flows for vectors (Durkan et al. 2019), configured as in the funnels paper's Table 5.

One flow step = fixed random permutation -> LU-linear (optional) -> rational-quadratic spline layer,
the spline being a coupling layer or a masked-autoregressive (MADE) layer with residual conditioner
nets. A final LU-linear closes the flow, as in the NSF paper's UCI models. ``unconditional_transform``
adds the NSF's unconditional spline on the identity features of every coupling layer (its UCI code's
``apply_unconditional_transform``, kept by the funnels authors' ``experiments/uci.py``: Table 1).
``flow_steps`` also builds Glow-style steps (``kind="affine"``, ``actnorm=True``) for the other
vector families.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from funnelrun.models.flow import Flow
from funnelrun.models.image_flows import build_image_nsf
from funnelrun.options import LinearKind, SplineKind
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.autoregressive import RQSplineAutoregressive
from funnelrun.transforms.base import Transform
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling, alternating_mask
from funnelrun.transforms.linear import LULinear, RandomPermutation


def spline_layer(
    kind: SplineKind | str,
    features: int,
    *,
    context_features: Optional[int] = None,
    hidden_features: int,
    num_blocks: int,
    num_bins: int,
    tail_bound: float,
    dropout: float = 0.0,
    batch_norm: bool = False,
    parity: bool = True,
    unconditional: bool = False,
) -> Transform:
    """One coupling (alternating masks by ``parity``) or autoregressive layer; ``affine`` ignores the
    spline arguments (bins, tail bound, batch norm, ``unconditional``: a spline coupling's elementwise
    spline on its identity features), the autoregressive layer ``unconditional``."""
    mask = [1] if features == 1 else alternating_mask(features, even=parity)
    if SplineKind(kind) is SplineKind.affine:
        return AffineCoupling(
            features, mask, context_features=context_features, hidden_features=hidden_features,
            num_blocks=num_blocks, dropout=dropout,
        )
    common: dict[str, Any] = dict(
        context_features=context_features,
        hidden_features=hidden_features,
        num_blocks=num_blocks,
        dropout=dropout,
        num_bins=num_bins,
        tail_bound=tail_bound,
        use_batch_norm=batch_norm,
    )
    if SplineKind(kind) is SplineKind.autoregressive:
        return RQSplineAutoregressive(features, **common)
    return RQSplineCoupling(features, mask, unconditional=unconditional, **common)


def flow_steps(
    num_steps: int,
    features: int,
    *,
    linear: LinearKind | str = LinearKind.lu,
    seed: int = 0,
    actnorm: bool = False,
    first_index: int = 0,
    **spline_kwargs,
) -> list[Transform]:
    """``num_steps`` steps of width ``features``: [ActNorm] -> [permutation (seeds ``seed``,
    ``seed + 1``, ...)] -> [LU-linear] -> ``spline_layer(**spline_kwargs)``. The coupling masks
    alternate from the step index ``first_index`` on (steps after a funnel continue its count)."""
    layers: list[Transform] = []
    for i in range(num_steps):
        layers += step_mixing(features, linear=linear, seed=seed + i, actnorm=actnorm)
        layers.append(spline_layer(features=features, parity=(first_index + i) % 2 == 0, **spline_kwargs))
    return layers


def step_mixing(features: int, *, linear: LinearKind | str, seed: int, actnorm: bool) -> list[Transform]:
    """What opens every step, a funnel step included (funnels authors' ``uci.py``): [ActNorm] ->
    [permutation (``seed``)] -> [LU-linear]."""
    layers: list[Transform] = [ActNorm(features)] if actnorm else []
    if LinearKind(linear) is not LinearKind.none:
        layers.append(RandomPermutation(features, seed=seed))
    if LinearKind(linear) is LinearKind.lu:
        layers.append(LULinear(features))
    return layers


def build_nsf(
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
    actnorm: bool = False,
    unconditional_transform: bool = False,
    image: Optional[Mapping[str, Any]] = None,
) -> Flow:
    """A dimension-preserving NSF on vectors of ``data_shape == (D,)``; with ``transform="affine"``
    and ``actnorm=True`` it is Glow, see :mod:`funnelrun.models.glow`.

    On images ``data_shape == (C, H, W)`` it is the multi-scale NSF (C) of
    :mod:`funnelrun.models.image_flows` with the ``image`` settings; of the other arguments only
    ``latent_dim`` and ``transform="affine"`` (affine couplings: the Table 2 baseline) are read."""
    if len(data_shape) == 3:
        return build_image_nsf(data_shape, affine=SplineKind(transform) is SplineKind.affine, latent_dim=latent_dim,
                               image=image)
    (features,) = data_shape
    if latent_dim is not None and latent_dim != features:
        raise ValueError(
            f"this flow preserves dimension: latent_dim must be null or {features}, got {latent_dim}; "
            "use a funnel model (model=f_nsf, f_glow or f_mlp) to reduce dimension"
        )
    layers = flow_steps(
        num_steps,
        features,
        linear=linear,
        kind=transform,
        hidden_features=hidden_features,
        num_blocks=num_blocks,
        num_bins=num_bins,
        tail_bound=tail_bound,
        dropout=dropout,
        batch_norm=batch_norm,
        actnorm=actnorm,
        unconditional=unconditional_transform,
    )
    if LinearKind(linear) is LinearKind.lu:
        layers.append(LULinear(features))
    return Flow(layers, data_shape)
