"""VFlow (Chen et al. 2020): a flow on data augmented with variational dimensions (§3.1, §5).

x is augmented with a ~ q(a | x), a conditional flow over ``augment_dim`` = D_Z dimensions
(:class:`~funnelrun.surjections.augment.Augment`), and a (D_X + D_Z)-dimensional flow maps
concat(x, a) to N(0, I). ``log_prob`` is then the one-sample ELBO of eq. (3), and evaluation adds
the importance-weighted estimate of eq. (5). The p-network defaults to Glow (ActNorm, permutation,
LU-linear and affine coupling steps closed by an LU-linear), the baseline of the paper's toy experiment
(§5), so a ``model=vflow`` run compares with ``model=glow`` through the same coupling nets;
``transform`` picks spline steps instead. ``augment_dim=0`` builds that plain flow, which is exact.

``augment_layer=generative_funnel`` replaces the augmentation by the funnels paper's generative funnel
(A.2, :class:`~funnelrun.surjections.generative_funnel.GenerativeFunnel`): the same q(a | x) is
sampled, and one conditional step G^{-1} (permutation, LU-linear, coupling conditioned on a) maps x
given a before the p-network; the contribution is eq. 9's bound, evaluated by importance sampling.

q(a | x) has no ActNorm and no dropout: it is sampled in the inverse direction and scored in the
forward one, so a data-dependent initialisation or a dropout mask would differ between the two passes
and log q would not be the density a was drawn from.

On images (C, H, W) it is the image VFlow of :mod:`funnelrun.models.image_vflow` with the ``image``
settings (augmented channels, multi-scale p-network); of the other arguments only ``transform``
(affine: Glow-style couplings, else RQ splines) and ``entropy_warmup_*`` apply there.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from funnelrun.distributions.conditional import ConditionalFlow
from funnelrun.models.flow import Flow
from funnelrun.models.image_vflow import build_image_vflow
from funnelrun.models.nsf import LinearKind, SplineKind, flow_steps
from funnelrun.options import AugmentLayer
from funnelrun.surjections.augment import Augment
from funnelrun.surjections.generative_funnel import GenerativeFunnel
from funnelrun.transforms.base import CompositeTransform, Transform
from funnelrun.transforms.conditional_affine import ConditionalAffine
from funnelrun.transforms.linear import LULinear


def build_vflow(
    data_shape: tuple[int, ...],
    *,
    augment_dim: int = 2,
    num_steps: int = 4,
    transform: SplineKind | str = SplineKind.affine,
    actnorm: bool = True,
    hidden_features: int = 64,
    num_blocks: int = 2,
    num_bins: int = 8,
    tail_bound: float = 3.0,
    dropout: float = 0.0,
    linear: LinearKind | str = LinearKind.lu,
    q_steps: int = 1,
    q_hidden_features: Optional[int] = None,
    q_gaussian: bool = True,
    entropy_warmup_steps: int = 0,
    entropy_warmup_start: float = 0.5,
    augment_layer: AugmentLayer | str = AugmentLayer.concat,
    image: Optional[Mapping[str, Any]] = None,
) -> Flow:
    """VFlow on vectors of ``data_shape == (D,)``: ``num_steps`` steps of width D + ``augment_dim``
    (the p-network) after ``q_steps`` conditional steps for q(a | x) (the q-network, §5: one step),
    on a conditional Gaussian N(mu(x), sigma(x)) when ``q_gaussian`` (a conditional Glow's learned
    prior), else on N(0, I). ``entropy_warmup_*``: the warm-up of q's entropy term in training
    (:class:`~funnelrun.surjections.augment.Augment`). ``augment_layer=generative_funnel``: the
    generative funnel (A.2) in place of the augmentation.
    On images ``data_shape == (C, H, W)``: :func:`~funnelrun.models.image_vflow.build_image_vflow`."""
    generative = AugmentLayer(augment_layer) is AugmentLayer.generative_funnel
    if generative and (len(data_shape) == 3 or augment_dim < 1 or entropy_warmup_steps):
        raise ValueError(
            "model.augment_layer=generative_funnel needs vector data, model.augment_dim >= 1 and "
            f"model.entropy_warmup_steps=0; got data of shape {tuple(data_shape)}, augment_dim={augment_dim}, "
            f"entropy_warmup_steps={entropy_warmup_steps}"
        )
    if len(data_shape) == 3:
        return build_image_vflow(data_shape, affine=SplineKind(transform) is SplineKind.affine, image=image,
                                 entropy_warmup_steps=entropy_warmup_steps, entropy_warmup_start=entropy_warmup_start)
    (features,) = data_shape
    if augment_dim < 0:
        raise ValueError(f"augment_dim must be >= 0, got {augment_dim}")
    step: dict[str, Any] = dict(kind=transform, num_blocks=num_blocks, num_bins=num_bins, tail_bound=tail_bound,
                                linear=linear)
    layers: list[Transform] = []
    if augment_dim > 0:
        q_layers = flow_steps(q_steps, augment_dim, context_features=features,
                              hidden_features=q_hidden_features or hidden_features, **step)
        if q_gaussian:
            q_layers.append(ConditionalAffine(augment_dim, features, q_hidden_features or hidden_features))
        q = ConditionalFlow(augment_dim, CompositeTransform(q_layers))
        if generative:
            g_inverse = flow_steps(1, features, context_features=augment_dim, seed=500, hidden_features=hidden_features,
                                   **step)
            layers.append(GenerativeFunnel(features, augment_dim, q, CompositeTransform(g_inverse)))
        else:
            layers.append(Augment(q, entropy_warmup_steps, entropy_warmup_start))
    width = features + augment_dim
    layers += flow_steps(num_steps, width, actnorm=actnorm, hidden_features=hidden_features, dropout=dropout, **step)
    if LinearKind(linear) is LinearKind.lu:
        layers.append(LULinear(width))
    return Flow(layers, data_shape)
