"""Base and conditional densities."""
from funnelrun.distributions.base import StandardNormal
from funnelrun.distributions.conditional import ConditionalDiagonalGaussian, ConditionalFlow

__all__ = ["StandardNormal", "ConditionalDiagonalGaussian", "ConditionalFlow"]
