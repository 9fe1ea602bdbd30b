"""Affine-coupling flows for vectors: Glow, F-Glow and RealNVP (funnels paper Table 1).

- Glow (Kingma & Dhariwal 2018): steps of ActNorm -> fixed permutation -> LU-linear -> affine
  coupling, closed by an LU-linear: :func:`~funnelrun.models.nsf.build_nsf` with affine couplings.
- F-Glow: Glow with the step after ``funnel_level`` steps (default: the last step) replaced by a
  funnel (funnels eq. 6, A.6) whose F is an affine coupling of the kept part conditioned on the
  dropped part, and whose p_phi(x_dropped | z) is a conditional Glow (half the steps, a third of the
  hidden features) or a diagonal-Gaussian ansatz: :func:`~funnelrun.models.f_nsf.build_f_nsf` with
  affine couplings.
- RealNVP (Dinh et al. 2017): affine couplings with alternating masks, no permutation and no
  LU-linear; optional ActNorm in place of RealNVP's batch normalisation.

The builders pass their other keyword arguments (``num_steps``, ``hidden_features``, ``num_blocks``,
``dropout``, ``latent_dim``, and for F-Glow ``dim_reduction``, ``conditional``, ...) to the NSF and
F-NSF builders, whose spline-only arguments an affine coupling ignores.

On images (C, H, W) the builders take the ``image`` settings instead (:mod:`funnelrun.models.image_flows`):
Glow is the multi-scale NSF architecture with affine couplings (the funnels paper's Table 2
"baseline"), F-Glow the convolutional F-NSF with affine couplings, RealNVP the multi-scale RealNVP
with checkerboard and channel masks.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from funnelrun.models.f_nsf import build_f_nsf
from funnelrun.models.flow import Flow
from funnelrun.models.image_flows import build_image_realnvp
from funnelrun.models.nsf import LinearKind, SplineKind, build_nsf


def build_glow(data_shape: tuple[int, ...], *, actnorm: bool = True, **kwargs: Any) -> Flow:
    """Glow on vectors of ``data_shape == (D,)``; ``latent_dim`` must be null or D."""
    return build_nsf(data_shape, transform=SplineKind.affine, actnorm=actnorm, **kwargs)


def build_realnvp(
    data_shape: tuple[int, ...], *, actnorm: bool = False, image: Optional[Mapping[str, Any]] = None, **kwargs: Any
) -> Flow:
    """RealNVP on vectors: Glow without permutations or LU-linears (alternating masks only) and, by
    default, without ActNorm. On images (C, H, W): the multi-scale RealNVP of
    :func:`~funnelrun.models.image_flows.build_image_realnvp` with the ``image`` settings."""
    if len(data_shape) == 3:
        return build_image_realnvp(data_shape, actnorm=actnorm, latent_dim=kwargs.get("latent_dim"), image=image)
    return build_glow(data_shape, linear=LinearKind.none, actnorm=actnorm, **kwargs)


def build_f_glow(
    data_shape: tuple[int, ...], *, actnorm: bool = True, funnel_level: Optional[int] = None, **kwargs: Any
) -> Flow:
    """F-Glow on vectors of ``data_shape == (D,)``: set ``latent_dim`` (1..D-1) or ``dim_reduction``;
    ``funnel_level`` counts the Glow steps before the funnel (None: all but one)."""
    return build_f_nsf(data_shape, transform=SplineKind.affine, actnorm=actnorm, funnel_level=funnel_level, **kwargs)
