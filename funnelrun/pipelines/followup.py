"""How the follow-up tools (``funnelrun-sample``, ``funnelrun-eval``, ``funnelrun-check``) read a run.

    funnelrun-sample ckpt_path=outputs/2026-11-22/10-00-00-123456 sample.num_samples=5000

``ckpt_path`` names the run: its directory (then its best-by-validation checkpoint, else
``last.ckpt``), one of its ``checkpoints/*.ckpt`` files, or ``last`` / ``best`` with
``hydra.run.dir=<the run's directory>``. The model and data settings come from the run's
``config.yaml`` (:func:`funnelrun.api.load_run`), so nothing of the training command is typed
again. Overrides may change only what does not change the model: :data:`MAY_CHANGE` (where the data
is and how it is read, the tools' own settings, the device, the seed of what is drawn). Model and
data settings typed anyway (``model=f_nsf data=mnist model.latent_dim=16``, as a training command
has them) are checked against the run's: equal ones are accepted, different ones stop the tool
naming only the keys that differ.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from funnelrun.api import Run, load_run, locate_run, read_run_config
from funnelrun.config import compose_config
from funnelrun.errors import FunnelrunError
from funnelrun.overrides import IDENTITY, RUN_KEYS, key_of, may_change, may_change_text


def _value(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else ""


def run_location(argv: list[str], tool: str) -> tuple[Path, str]:
    """(path, checkpoint) for :func:`~funnelrun.api.load_run` from ``ckpt_path`` and ``hydra.run.dir``."""
    values = {key: _value(a) for a in argv for key in RUN_KEYS if key_of(a) == key}
    ckpt, run_dir = values.get("ckpt_path"), values.get("hydra.run.dir")
    if not ckpt or ckpt == "null":
        raise FunnelrunError(
            f"{tool} needs the trained run: ckpt_path=<its directory> (e.g. ckpt_path=outputs/<date>/<time>), "
            "or one of its checkpoints/*.ckpt files"
        )
    if ckpt in ("last", "best"):
        if not run_dir:
            raise FunnelrunError(
                f"ckpt_path={ckpt} names a checkpoint of the run given by hydra.run.dir=<its directory>; add it, "
                "or give the directory itself: ckpt_path=<run dir>"
            )
        return Path(run_dir).expanduser(), ckpt
    path = Path(ckpt).expanduser()
    if not path.exists():
        raise FunnelrunError(f"no checkpoint or run directory at {path}; pass ckpt_path=<run dir> or "
                             "ckpt_path=<run dir>/checkpoints/<file>.ckpt")
    return path, "best"


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    return value.value if isinstance(value, Enum) else value


def _select(cfg: DictConfig, key: str) -> Any:
    return _plain(OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False))


def check_against_run(overrides: list[str], composed: DictConfig, run_cfg: DictConfig, run_dir: Path,
                      tool: str) -> None:
    """Model and data settings among ``overrides`` must be the run's; raise naming those that are not."""
    differing, foreign = [], []
    for override in overrides:
        key = key_of(override)
        if key in RUN_KEYS or may_change(key) or key == "trainer":
            continue
        if key.startswith("hydra") or key in ("logger", "debug", "hparams_search", "ckpt_path"):
            foreign.append(override)
            continue
        for identity_key in IDENTITY.get(key, (key,)):
            typed, trained = _select(composed, identity_key), _select(run_cfg, identity_key)
            if typed != trained:
                differing.append(f"{identity_key}: the run has {trained!r}, this command {typed!r} ({override})")
    if foreign:
        raise FunnelrunError(f"{' '.join(foreign)}: not a setting of {tool}; leave it out (it may change: "
                             f"{may_change_text()})")
    if differing:
        raise FunnelrunError(
            f"the run in {run_dir} was trained with other settings than this command gives:\n  "
            + "\n  ".join(dict.fromkeys(differing))
            + f"\n{tool} reads the model and data settings from {run_dir / 'config.yaml'}: leave them out. "
            f"It may change: {may_change_text()}"
        )


def applied_overrides(overrides: list[str], composed: DictConfig) -> list[str]:
    """The overrides a tool applies to the run's config (dotted ``key=value``, types already checked)."""
    applied = [o.lstrip("+") for o in overrides if may_change(key_of(o))]
    if any(key_of(o) == "trainer" for o in overrides):  # trainer=gpu: run the tool on that device
        applied += [f"trainer.{k}={composed.trainer[k]}" for k in ("accelerator", "devices")
                    if not any(key_of(o) == f"trainer.{k}" for o in overrides)]
    return applied


def read_run(argv: list[str], tool: str, checkpoint: Optional[str] = None) -> Run:
    """The run ``argv`` names (``ckpt_path``, maybe ``hydra.run.dir``) with the overrides it may change
    applied; ``argv`` holds only config overrides (a tool removes its own arguments first)."""
    path, which = run_location(argv, tool)
    overrides = [a for a in argv if key_of(a) not in RUN_KEYS]
    composed = compose_config(overrides)  # a misspelt key or wrong type fails here, with the fix
    run_dir, ckpt = locate_run(path, checkpoint or which)
    check_against_run(overrides, composed, read_run_config(run_dir), run_dir, tool)
    return load_run(ckpt, overrides=applied_overrides(overrides, composed))
