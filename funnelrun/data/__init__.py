"""Data modules: 2-D plane datasets (seeded samplers, exact densities where known), the MAF tabular sets
and image sets (n-bit, dequantized)."""
from funnelrun.data.base import FunnelDataModule, TensorRows
from funnelrun.data.images import ImageDataModule
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
from funnelrun.data.uci import TabularDataModule

__all__ = [
    "FunnelDataModule",
    "ImageDataModule",
    "PLANE_SAMPLERS",
    "TRUE_LOG_DENSITIES",
    "PlaneDataModule",
    "TabularDataModule",
    "TensorRows",
    "checkerboard",
    "checkerboard_log_density",
    "eight_gaussians",
    "four_circles",
    "four_circles_log_density",
    "two_moons",
    "two_spirals",
]
