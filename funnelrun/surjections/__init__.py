"""Dimension-reducing layers: the funnel (eq. 6) and its special case, the slice."""
from funnelrun.surjections.funnel import Funnel
from funnelrun.surjections.slice import Slice

__all__ = ["Funnel", "Slice"]
