"""Bijections: one concept per file (splines, coupling, autoregressive, linear, actnorm; on images:
squeeze, 1 x 1 convolution, image couplings, the multi-scale architecture, flatten)."""
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.autoregressive import RQSplineAutoregressive
from funnelrun.transforms.base import CompositeTransform, Transform
from funnelrun.transforms.conv1x1 import Conv1x1
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling, alternating_mask
from funnelrun.transforms.flatten import Flatten
from funnelrun.transforms.image_coupling import ImageAffineCoupling, ImageRQSplineCoupling, MaskKind
from funnelrun.transforms.linear import LULinear, Permutation, RandomPermutation, ReversePermutation
from funnelrun.transforms.multiscale import MultiScale
from funnelrun.transforms.nets import MADE, ResidualNet
from funnelrun.transforms.splines import RQSpline, rational_quadratic_spline
from funnelrun.transforms.squeeze import Squeeze, Unsqueeze

__all__ = [
    "Transform",
    "CompositeTransform",
    "ActNorm",
    "AffineCoupling",
    "Conv1x1",
    "Flatten",
    "ImageAffineCoupling",
    "ImageRQSplineCoupling",
    "LULinear",
    "MADE",
    "MaskKind",
    "MultiScale",
    "Permutation",
    "RQSpline",
    "RQSplineAutoregressive",
    "RQSplineCoupling",
    "RandomPermutation",
    "ResidualNet",
    "ReversePermutation",
    "Squeeze",
    "Unsqueeze",
    "alternating_mask",
    "rational_quadratic_spline",
]
