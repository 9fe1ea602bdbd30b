"""Range checks that config schemas cannot express: every problem is reported at once, by key,
before anything is built or written."""
from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig

from funnelrun.errors import FunnelrunError

_Rule = tuple[Callable[[Any], bool], str]
_AT_LEAST_1: _Rule = (lambda v: v >= 1, "must be at least 1")
_AT_LEAST_0: _Rule = (lambda v: v >= 0, "must be at least 0")
_POSITIVE: _Rule = (lambda v: v > 0, "must be positive")
_PROBABILITY: _Rule = (lambda v: 0 <= v < 1, "must be in [0, 1)")

#: rules by key name, applied wherever the key appears in these sections (null values are skipped)
RULES: dict[str, _Rule] = {
    "hidden_features": _AT_LEAST_1,
    "conditional_hidden_features": _AT_LEAST_1,
    "num_bins": _AT_LEAST_1,
    "conditional_bins": _AT_LEAST_1,
    "num_blocks": _AT_LEAST_0,
    "num_steps": _AT_LEAST_0,
    "conditional_steps": _AT_LEAST_1,
    "depth": _AT_LEAST_0,
    "vae_depth": _AT_LEAST_0,
    "vae_hidden_features": _AT_LEAST_1,
    "q_steps": _AT_LEAST_1,
    "q_hidden_features": _AT_LEAST_1,
    "is_chunk_size": _AT_LEAST_1,
    "latent_dim": _AT_LEAST_1,
    "augment_dim": _AT_LEAST_0,
    "dim_reduction": _AT_LEAST_1,
    "funnel_level": _AT_LEAST_0,
    "tail_bound": _POSITIVE,
    "dropout": _PROBABILITY,
    "batch_size": _AT_LEAST_1,
    "eval_batch_size": _AT_LEAST_1,
    "n_train": _AT_LEAST_1,
    "n_val": _AT_LEAST_1,
    "n_test": _AT_LEAST_1,
    "num_workers": _AT_LEAST_0,
    "lr": _POSITIVE,
    "weight_decay": _AT_LEAST_0,
    "max_consecutive_nonfinite": _AT_LEAST_1,
    "max_steps": _AT_LEAST_0,
    "val_check_interval": _AT_LEAST_1,
    "log_every_n_steps": _AT_LEAST_1,
    "gradient_clip_val": _POSITIVE,
    "num_samples": _AT_LEAST_1,
    "grid_points": _AT_LEAST_1,
    "is_samples": _AT_LEAST_1,
    # the Inception score's 10 splits need at least 10 samples (funnelrun/evaluation/sample_quality.py)
    "quality_samples": (lambda v: v >= 10, "must be at least 10 (the Inception score splits the samples 10 ways)"),
    "quality_batch_size": _AT_LEAST_1,
}
#: rules of top-level keys
TOP_LEVEL_RULES: dict[str, _Rule] = {"log_every_s": _POSITIVE}
SECTIONS = ("data", "model", "optim", "trainer", "eval")


def config_problems(cfg: DictConfig) -> list[str]:
    problems = []
    for section in SECTIONS:
        node = cfg.get(section)
        if node is None:
            continue
        for key, (ok, why) in RULES.items():
            value = node.get(key) if key in node else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not ok(value):
                problems.append(f"{section}.{key}={value} {why}")
    for key, (ok, why) in TOP_LEVEL_RULES.items():
        value = cfg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not ok(value):
            problems.append(f"{key}={value} {why}")
    return problems


def validate_config(cfg: DictConfig) -> None:
    """Raise a FunnelrunError naming every out-of-range value."""
    problems = config_problems(cfg)
    if problems:
        raise FunnelrunError("invalid config values:\n  " + "\n  ".join(problems))


#: trainer.accelerator values that need a CUDA GPU
GPU_ACCELERATORS = ("gpu", "cuda")


def check_devices(cfg: DictConfig) -> None:
    """A GPU trainer (``trainer=gpu``, ``ddp``, ``ddp_multinode``) needs GPUs torch can use, and no more
    devices than the machine has; raise a FunnelrunError with the fix otherwise (torch is imported
    only for a GPU trainer)."""
    trainer = cfg.get("trainer")
    if trainer is None or str(trainer.get("accelerator", "cpu")).lower() not in GPU_ACCELERATORS:
        return
    import torch

    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
        raise FunnelrunError(
            f"trainer.accelerator={trainer.accelerator} needs a CUDA GPU, and torch finds none here ({build}). "
            "Use trainer=cpu (the default) on this machine, or run on a GPU node (e.g. hydra/launcher=slurm)"
        )
    devices, available = trainer.get("devices", 1), torch.cuda.device_count()
    if isinstance(devices, int) and devices > available:
        raise FunnelrunError(
            f"trainer.devices={devices} but this machine has {available} GPU(s); set trainer.devices={available} "
            "or trainer.devices=-1 (all of them)"
        )
