"""Dimension-changing layers: the funnel (eq. 6) and its special case, the slice (exact); the
stochastic VAE layer and VFlow augmentation (bounds, ``exact = False``)."""
from funnelrun.surjections.augment import Augment
from funnelrun.surjections.funnel import Funnel
from funnelrun.surjections.slice import Slice
from funnelrun.surjections.vae import VAELayer

__all__ = ["Augment", "Funnel", "Slice", "VAELayer"]
