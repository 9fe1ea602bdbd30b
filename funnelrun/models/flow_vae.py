"""A flow with a learned low-dimensional prior (Das et al. 2019, "Dimensionality Reduction Flows", §3.1).

A bijective flow f maps x to y = f(x) of the same dimension; a VAE layer then infers a smaller latent
eps ~ q(eps | y) with decoder p(y | eps) and prior N(0, I). ``Flow.log_prob`` adds the base density and
the contributions of both parts, which is exactly that paper's lower bound (11) with one sample of
eps (the paper's z is our y):

    log N(eps; 0, I) + [log p(y | eps) - log q(eps | y)] + log|det df/dx|
    (base)             (VAELayer contribution)            (flow contributions)

so the model trains on (11) with no extra code, and ``exact`` is False. The flow is
:func:`~funnelrun.models.nsf.build_nsf`'s, so ``model=flow_vae`` compares with ``model=f_nsf`` at the
same latent size.
"""
from __future__ import annotations

from typing import Any

from funnelrun.models.flow import Flow
from funnelrun.models.nsf import build_nsf
from funnelrun.surjections.vae import VAELayer


def build_flow_vae(
    data_shape: tuple[int, ...],
    *,
    latent_dim: int = 1,
    vae_hidden_features: int = 128,
    vae_depth: int = 3,
    vae_dropout: float = 0.0,
    **nsf_kwargs: Any,
) -> Flow:
    """The NSF ``build_nsf(data_shape, **nsf_kwargs)`` on vectors of ``data_shape == (D,)``, then a
    :class:`~funnelrun.surjections.vae.VAELayer` from D to ``latent_dim`` dimensions whose encoder
    and decoder have ``vae_depth`` ReLU layers of ``vae_hidden_features`` units."""
    (features,) = data_shape
    flow = build_nsf(data_shape, **nsf_kwargs)
    vae = VAELayer(features, latent_dim, vae_hidden_features, vae_depth, vae_dropout)
    return Flow([*flow.transform.transforms, vae], data_shape)
