"""Checkpoint look-up and compatibility: a checkpoint from another model fails with a clear message."""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Optional

import torch

from funnelrun.errors import FunnelrunError
from funnelrun.run_files import CHECKPOINT_DIR

FINGERPRINT_KEY = "funnelrun"
#: the funnelrun version that wrote a checkpoint
VERSION_KEY = "funnelrun_version"


def resolve_ckpt_path(ckpt_path: Optional[str], run_dir: Path) -> Optional[Path]:
    """``None`` -> None; ``"last"`` -> ``<run_dir>/checkpoints/last.ckpt``; else the given file."""
    if ckpt_path is None:
        return None
    path = run_dir / CHECKPOINT_DIR / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path).expanduser()
    if not path.is_file():
        hint = (
            "ckpt_path=last resumes the run given by hydra.run.dir=<its directory>"
            if ckpt_path == "last"
            else "pass the path of a .ckpt file, e.g. <run dir>/checkpoints/last.ckpt"
        )
        raise FunnelrunError(f"no checkpoint at {path}; {hint}")
    return path


def load_checkpoint_file(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``: tensors and plain data only, so a crafted pickle is
    refused before any of its code runs (funnelrun's own checkpoints hold nothing else,
    :mod:`funnelrun.training.module`). Every checkpoint funnelrun reads goes through here
    (Lightning's too: :class:`funnelrun.training.checkpoint_io.AtomicCheckpointIO`)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):
            raise _unreadable(path, exc) from exc  # garbage or a truncated file, not a crafted one
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f" (first: {found.group(1)})" if found else ""
        raise FunnelrunError(
            f"refused to load {path}: it holds Python objects other than tensors and plain data{what}, which "
            "unpickling would run as code. funnelrun checkpoints hold tensors and plain data only and are "
            "read with torch.load(weights_only=True); this file was not written by funnelrun, or was altered. "
            "Use a checkpoint funnelrun wrote (e.g. another of <run>/checkpoints/*.ckpt)"
        ) from None
    except Exception as exc:  # a truncated/corrupt file surfaces as many different exception types
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> FunnelrunError:
    detail = str(exc)
    if "WeightsUnpickler error:" in detail:  # torch's advice to reload with weights_only=False: never
        detail = detail.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
    return FunnelrunError(
        f"could not read checkpoint {path}: {type(exc).__name__}: {detail}. The file is truncated or "
        "not a funnelrun checkpoint; use another (e.g. the best-*.ckpt beside it)"
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` on the CPU (:func:`load_checkpoint_file`)."""
    return load_checkpoint_file(path)


#: what every checkpoint Lightning writes holds (and resuming reads)
LIGHTNING_KEYS = ("state_dict", "pytorch-lightning_version", "global_step", "epoch")


_USE_FUNNELRUNS = "use a checkpoint funnelrun wrote (<run dir>/checkpoints/last.ckpt or best-step*.ckpt)"


def check_checkpoint_contents(obj: Any, path: Path) -> dict[str, Any]:
    """``obj`` as read from ``path`` must be a Lightning checkpoint: a dict with :data:`LIGHTNING_KEYS`,
    its ``state_dict`` a dict of tensors; returns it, else raises a FunnelrunError saying what the file holds."""
    if not isinstance(obj, dict):
        raise FunnelrunError(f"{path} holds a {type(obj).__name__}, not a checkpoint (a dict of Lightning's "
                             f"entries {', '.join(LIGHTNING_KEYS)}); {_USE_FUNNELRUNS}")
    missing = [key for key in LIGHTNING_KEYS if key not in obj]
    if missing:
        raise FunnelrunError(f"{path} is not a Lightning checkpoint: it lacks {', '.join(map(repr, missing))} "
                             f"(it has {', '.join(map(repr, list(obj)[:8])) or 'nothing'}); {_USE_FUNNELRUNS}")
    weights = obj["state_dict"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise FunnelrunError(f"{path}: its 'state_dict' is not a dict of tensors; {_USE_FUNNELRUNS}")
    return obj


def check_weight_shapes(checkpoint: dict[str, Any], path: Path, model: torch.nn.Module) -> None:
    """Every weight of ``model`` must be in the checkpoint with the model's shape (checked after
    :func:`check_compatible`, so a checkpoint of another model is reported as such)."""
    weights = checkpoint["state_dict"]
    expected = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [f"{k}: {tuple(weights[k].shape)} in the file, {shape} in the model"
             for k, shape in expected.items() if k in weights and tuple(weights[k].shape) != shape]
    absent = [k for k in expected if k not in weights]
    if wrong or absent:
        from funnelrun import __version__

        listed = wrong[:3] + [f"{k}: missing from the file" for k in absent[: max(0, 3 - len(wrong))]]
        written = checkpoint.get(VERSION_KEY, "unknown (before 0.1.0)")
        hint = (f"it was written by funnelrun {written}, this is {__version__}: load it with the version that "
                "wrote it" if written != __version__ else _USE_FUNNELRUNS)
        raise FunnelrunError(f"the weights in {path} do not fit this model ({len(wrong)} of wrong shape, "
                             f"{len(absent)} missing): " + "; ".join(listed) + f"; {hint}")


def model_weights(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The model's state dict in a checkpoint of :class:`~funnelrun.training.module.DensityEstimator`
    (its keys without the module's ``model.`` prefix), for ``Flow.load_state_dict``."""
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}


_ABSENT = "<absent>"


def differences(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in ``a``, value in ``b``) for every leaf where two nested dicts differ.

        >>> differences({"model": {"latent_dim": 16, "bins": 8}}, {"model": {"latent_dim": 4, "bins": 8}})
        [('model.latent_dim', 16, 4)]
    """
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            found += differences(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{prefix}{key}.")
        return found
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def check_compatible(path: Path, checkpoint: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """The checkpoint must come from the same model config and data shape as this run."""
    saved = checkpoint.get(FINGERPRINT_KEY)
    if saved is None:
        raise FunnelrunError(f"{path} is not a funnelrun checkpoint (no '{FINGERPRINT_KEY}' entry)")
    diffs = [f"{key}: checkpoint has {a!r}, this run has {b!r}" for key, a, b in differences(saved, fingerprint)]
    if diffs:
        raise FunnelrunError(
            f"checkpoint {path} was written by another model or data set:\n  " + "\n  ".join(diffs)
            + "\nUse the same model=/data= options (and model.* overrides) as the run that wrote it"
        )


def load_weights(model: torch.nn.Module, path: Path, checkpoint: dict[str, Any]) -> None:
    """Load the checkpoint's model weights into ``model``; weights that do not fit (a checkpoint of
    another funnelrun version whose layers differ) are refused with the version that wrote them."""
    from funnelrun import __version__

    try:
        model.load_state_dict(model_weights(checkpoint))
    except (RuntimeError, KeyError) as exc:
        written = checkpoint.get(VERSION_KEY, "unknown (before 0.1.0)")
        raise FunnelrunError(
            f"the weights in {path} do not fit this model (written by funnelrun {written}, this is "
            f"{__version__}): {str(exc).splitlines()[0]}. Load it with the funnelrun version that wrote it"
        ) from exc
