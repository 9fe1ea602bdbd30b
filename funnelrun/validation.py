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
}
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
    return problems


def validate_config(cfg: DictConfig) -> None:
    """Raise a FunnelrunError naming every out-of-range value."""
    problems = config_problems(cfg)
    if problems:
        raise FunnelrunError("invalid config values:\n  " + "\n  ".join(problems))
