"""Dimension-changing layers: the funnel (eq. 6), its coupling form, and its special case the slice
(exact); the stochastic VAE layer and VFlow augmentation (bounds, ``exact = False``). On images: the
convolutional funnel, the coupling funnel and the max-pool surjection (exact), the image VAE layer
(a bound); the generative funnel (A.2: a bound, like VFlow's augmentation)."""
from funnelrun.surjections.augment import Augment
from funnelrun.surjections.conv_funnel import ConvFunnel
from funnelrun.surjections.coupling_funnel import CouplingFunnel
from funnelrun.surjections.funnel import Funnel
from funnelrun.surjections.generative_funnel import GenerativeFunnel
from funnelrun.surjections.image_coupling_funnel import ImageCouplingFunnel
from funnelrun.surjections.image_vae import ImageVAELayer
from funnelrun.surjections.maxpool import MaxPool
from funnelrun.surjections.slice import Slice
from funnelrun.surjections.vae import VAELayer

__all__ = ["Augment", "ConvFunnel", "CouplingFunnel", "Funnel", "GenerativeFunnel", "ImageCouplingFunnel",
           "ImageVAELayer", "MaxPool", "Slice", "VAELayer"]
