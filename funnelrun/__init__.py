"""funnelrun: a Hydra-configured experiment runner for dimension-reducing normalizing flows.

The Python API (:mod:`funnelrun.api`), imported on first use so that the command line starts fast:

- :func:`compose`: overrides -> the config ``funnelrun`` would run;
- :func:`build`: config -> (model, data module);
- :func:`load_run`: a run directory or checkpoint -> :class:`Run` (model with weights, config, data).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Run", "build", "compose", "load_run", "__version__"]

if TYPE_CHECKING:
    from funnelrun.api import Run, build, compose, load_run


def __getattr__(name: str) -> Any:
    if name in ("Run", "build", "compose", "load_run"):
        from funnelrun import api

        return getattr(api, name)
    raise AttributeError(f"module 'funnelrun' has no attribute {name!r}")
