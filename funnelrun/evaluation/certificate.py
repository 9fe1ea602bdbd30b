"""``funnelrun-check``: the exactness certificate of a configured (optionally trained) model.

Walks the model's layers on real test data and reports, as the last line of output, one JSON object:
``roundtrip_max_abs_err`` (bijections: inverse(forward(x)) vs x; funnels: their kept-part map and
the right-inverse condition forward(inverse(z)) == z, funnels paper A.1; a coupling funnel's coupling
over all features and its right inverse; on images the convolutional
funnel's per-tile kept map x_+ -> J x_+ + W' x_- + b and its right inverse, the image coupling
funnel's coupling on the squeezed image and its right inverse, and the max-pool surjection's right
inverse; the generative funnel's G given its sampled z_{n+1:m}, and inverse(forward(x)) == x),
``logdet_max_abs_err``
(reported log-dets against the autograd Jacobian on every bijective part) and ``density_integral``
(2-D data: the model density integrated over a grid holding the data; null otherwise, and null for
models that only give a bound) and ``exact``. An error is null when the model has no part it
applies to (a VAE: no bijection, no funnel), never 0.
"""
from __future__ import annotations

from typing import Optional, cast

import torch
from torch import Tensor

from funnelrun.distributions.conditional import ConditionalFlow
from funnelrun.evaluation.exactness import density_integral_2d, logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.models.flow import Flow
from funnelrun.surjections.conv_funnel import ConvFunnel
from funnelrun.surjections.coupling_funnel import CouplingFunnel
from funnelrun.surjections.funnel import Funnel
from funnelrun.surjections.generative_funnel import GenerativeFunnel
from funnelrun.surjections.image_coupling_funnel import ImageCouplingFunnel
from funnelrun.surjections.maxpool import MaxPool
from funnelrun.transforms.base import Transform
from funnelrun.transforms.squeeze import squeeze

#: examples used for the (per-example, quadratic-cost) autograd Jacobians
JACOBIAN_EXAMPLES = 16


#: the largest error found so far per check; None until a part of the model was checked
Errors = dict[str, Optional[float]]


def _worst(errs: Errors, key: str, value: float) -> None:
    previous = errs[key]
    errs[key] = value if previous is None else max(previous, value)


def _check_bijection(t: Transform, x: Tensor, context: Optional[Tensor], errs: Errors) -> None:
    _worst(errs, "roundtrip", roundtrip_max_abs_err(t, x, context))
    n = JACOBIAN_EXAMPLES
    _worst(errs, "logdet", logdet_max_abs_err(t, x[:n], None if context is None else context[:n]))


@torch.no_grad()
def _check_right_inverse(layer: Transform, h: Tensor, errs: Errors) -> None:
    """max |forward(inverse(z)) - z| for a surjection (funnels paper A.1)."""
    z, _ = layer(h)
    z_again, _ = layer(layer.inverse(z))
    _worst(errs, "roundtrip", (z_again - z).abs().max().item())


def _check_funnel(layer: Funnel, h: Tensor, errs: Errors) -> None:
    x_dropped, x_kept = h[:, : layer.dropped], h[:, layer.dropped :]
    if layer.transform is not None:
        _check_bijection(layer.transform, x_kept, x_dropped, errs)
    if isinstance(layer.conditional, ConditionalFlow):
        with torch.no_grad():
            z, _ = layer(h)
        _check_bijection(layer.conditional.transform, x_dropped, z, errs)
    _check_right_inverse(layer, h, errs)


def _check_coupling_funnel(layer: CouplingFunnel, h: Tensor, errs: Errors) -> None:
    """The coupling over all D features (round trip, log-det by autograd), p_phi's flow on the
    dropped outputs given z, and the right inverse of the whole layer."""
    _check_bijection(layer.coupling, h, None, errs)
    if isinstance(layer.conditional, ConditionalFlow):
        with torch.no_grad():
            y, _ = layer.coupling(h)
        z, y_dropped = y.index_select(1, layer.coupling.transform_idx), y.index_select(1, layer.coupling.identity_idx)
        _check_bijection(layer.conditional.transform, y_dropped, z, errs)
    _check_right_inverse(layer, h, errs)


def _check_conv_funnel(layer: ConvFunnel, h: Tensor, errs: Errors) -> None:
    """The kept map per tile (rows x_+ with context x_-: round trip, log|det J| by autograd) and the
    right inverse of the whole layer."""
    dropped, kept = layer.split(h)
    rows, context = kept.movedim(1, -1).flatten(0, 2), layer.per_pixel(dropped).flatten(0, 2)
    _check_bijection(layer.kept_map, rows, context, errs)
    _check_right_inverse(layer, h, errs)


def _check_image_coupling_funnel(layer: ImageCouplingFunnel, h: Tensor, errs: Errors) -> None:
    """The coupling on the squeezed image (round trip, log-det by autograd) and the right inverse."""
    _check_bijection(layer.coupling, squeeze(h), None, errs)
    _check_right_inverse(layer, h, errs)


def _check_generative_funnel(layer: GenerativeFunnel, h: Tensor, errs: Errors) -> None:
    """G^{-1} given a sample a ~ q(a | x) (round trip, log-det by autograd), and inverse(forward(x)) == x."""
    with torch.no_grad():
        a, _ = layer.q.sample_with_log_prob(h)
    _check_bijection(layer.transform, h, a, errs)
    with torch.no_grad():
        z, _ = layer(h)
        _worst(errs, "roundtrip", (layer.inverse(z) - h).abs().max().item())


def certify(model: Flow, x: Tensor, bounds=None, points_per_axis: int = 400) -> dict[str, Optional[float]]:
    """Layer-by-layer exactness errors of ``model`` on the examples ``x``; an error is None (null in
    the JSON) when no part of the model was checked for it (a VAE has no bijective part)."""
    model.eval()
    errs: Errors = {"roundtrip": None, "logdet": None}
    h = x
    for layer in cast(list[Transform], model.transform.transforms):
        if layer.bijective:
            _check_bijection(layer, h, None, errs)
        elif isinstance(layer, Funnel):
            _check_funnel(layer, h, errs)
        elif isinstance(layer, CouplingFunnel):
            _check_coupling_funnel(layer, h, errs)
        elif isinstance(layer, ConvFunnel):
            _check_conv_funnel(layer, h, errs)
        elif isinstance(layer, ImageCouplingFunnel):
            _check_image_coupling_funnel(layer, h, errs)
        elif isinstance(layer, GenerativeFunnel):
            _check_generative_funnel(layer, h, errs)
        elif isinstance(layer, MaxPool):
            _check_right_inverse(layer, h, errs)
        with torch.no_grad():
            h, _ = layer(h)
    integral = None  # a bound's exp(ELBO) is no density: nothing to integrate
    if model.data_dim == 2 and bounds is not None and model.exact:
        low, high = bounds
        integral = density_integral_2d(model.log_prob, low, high, points_per_axis=points_per_axis)
    return {
        "roundtrip_max_abs_err": errs["roundtrip"],
        "logdet_max_abs_err": errs["logdet"],
        "density_integral": integral,
        "exact": model.exact,
    }
