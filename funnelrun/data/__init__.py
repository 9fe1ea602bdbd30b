"""Data modules: 2-D plane datasets (seeded samplers, exact densities where known)."""
from funnelrun.data.base import FunnelDataModule
from funnelrun.data.plane import (
    PLANE_SAMPLERS,
    TRUE_LOG_DENSITIES,
    PlaneDataModule,
    checkerboard,
    checkerboard_log_density,
    eight_gaussians,
    four_circles,
    four_circles_log_density,
    two_moons,
    two_spirals,
)

__all__ = [
    "FunnelDataModule",
    "PLANE_SAMPLERS",
    "TRUE_LOG_DENSITIES",
    "PlaneDataModule",
    "checkerboard",
    "checkerboard_log_density",
    "eight_gaussians",
    "four_circles",
    "four_circles_log_density",
    "two_moons",
    "two_spirals",
]
