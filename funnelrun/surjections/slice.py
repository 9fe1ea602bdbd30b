"""The slice surjection (Nielsen et al. 2020): the funnel with F = identity (funnels paper A.3).

Contribution: log p_phi(x_- | x_+); the kept coordinates pass through unchanged.
"""
from __future__ import annotations

from funnelrun.distributions.conditional import Conditional
from funnelrun.surjections.funnel import Funnel


class Slice(Funnel):
    """Keep x[:, dropped:], score the dropped x[:, :dropped] under p_phi(. | kept)."""

    def __init__(self, features: int, dropped: int, conditional: Conditional):
        super().__init__(features, dropped, conditional, transform=None)
