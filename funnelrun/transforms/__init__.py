"""Bijections: one concept per file (splines, coupling, autoregressive, linear, actnorm)."""
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.autoregressive import RQSplineAutoregressive
from funnelrun.transforms.base import CompositeTransform, Transform
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling, alternating_mask
from funnelrun.transforms.linear import LULinear, Permutation, RandomPermutation, ReversePermutation
from funnelrun.transforms.nets import MADE, ResidualNet
from funnelrun.transforms.splines import RQSpline, rational_quadratic_spline

__all__ = [
    "Transform",
    "CompositeTransform",
    "ActNorm",
    "AffineCoupling",
    "LULinear",
    "MADE",
    "Permutation",
    "RQSpline",
    "RQSplineAutoregressive",
    "RQSplineCoupling",
    "RandomPermutation",
    "ResidualNet",
    "ReversePermutation",
    "alternating_mask",
    "rational_quadratic_spline",
]
