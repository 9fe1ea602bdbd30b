"""funnelrun: a Hydra-configured experiment runner for dimension-reducing normalizing flows."""

__version__ = "0.1.0"
