"""Model families: one builder per family, each returning a :class:`Flow`."""
from funnelrun.models.flow import Flow

__all__ = ["Flow"]
