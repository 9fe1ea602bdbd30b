"""Range checks that config schemas cannot express: every problem is reported at once, by key,
before anything is built or written."""
from __future__ import annotations

import math
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from funnelrun.errors import FunnelrunError

_Rule = tuple[Callable[[Any], bool], str]
_AT_LEAST_1: _Rule = (lambda v: v >= 1, "must be at least 1")
_AT_LEAST_0: _Rule = (lambda v: v >= 0, "must be at least 0")
_POSITIVE: _Rule = (lambda v: v > 0, "must be positive")
_PROBABILITY: _Rule = (lambda v: 0 <= v < 1, "must be in [0, 1)")
#: seeds go to numpy and Lightning's ``seed_everything``, which take unsigned 32-bit integers
MAX_SEED = 2**32 - 1
_SEED: _Rule = (lambda v: 0 <= v <= MAX_SEED, f"must be between 0 and {MAX_SEED} (an unsigned 32-bit integer)")
#: the density figure evaluates grid_points ** 2 points (1000: a million)
MAX_GRID_POINTS = 1000
_GRID: _Rule = (
    lambda v: 2 <= v <= MAX_GRID_POINTS,
    f"must be between 2 and {MAX_GRID_POINTS} (points per axis of the density figure, which evaluates "
    "grid_points ** 2 of them)",
)

#: rules by key name, applied wherever the key appears in these sections, nested ones included
#: (``model.image.hidden_channels``; null values are skipped)
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
    "vae_dropout": _PROBABILITY,
    # image architectures (model.image.*)
    "levels": _AT_LEAST_1,
    "steps_per_level": _AT_LEAST_0,
    "hidden_channels": _AT_LEAST_1,
    "num_res_blocks": _AT_LEAST_0,
    "augment_channels": _AT_LEAST_0,
    "q_hidden_channels": _AT_LEAST_1,
    "q_res_blocks": _AT_LEAST_0,
    "blocks_per_stage": _AT_LEAST_1,
    "stage1_steps": _AT_LEAST_0,
    "batch_size": _AT_LEAST_1,
    "eval_batch_size": _AT_LEAST_1,
    "n_train": _AT_LEAST_1,
    "n_val": _AT_LEAST_1,
    "n_test": _AT_LEAST_1,
    "num_workers": _AT_LEAST_0,
    "seed": _SEED,
    "lr": _POSITIVE,
    "weight_decay": _AT_LEAST_0,
    "max_consecutive_nonfinite": _AT_LEAST_1,
    "max_steps": _AT_LEAST_0,
    "val_check_interval": _AT_LEAST_1,
    "log_every_n_steps": _AT_LEAST_1,
    "gradient_clip_val": _POSITIVE,
    "num_samples": _AT_LEAST_1,
    "grid_points": _GRID,
    "is_samples": _AT_LEAST_1,
    # the Inception score's 10 splits need at least 10 samples (funnelrun/evaluation/sample_quality.py)
    "quality_samples": (lambda v: v >= 10, "must be at least 10 (the Inception score splits the samples 10 ways)"),
    "quality_batch_size": _AT_LEAST_1,
    "interpolations": _AT_LEAST_0,
}
#: rules of every element of a list-valued key
LIST_RULES: dict[str, _Rule] = {
    "temperatures": (lambda v: v >= 0, "must hold numbers of at least 0 (each scales the std of the sampled "
                                       "Gaussians; 0 draws their means)"),
    "channels": _AT_LEAST_1,
    "widths": _AT_LEAST_1,
}
#: rules of top-level keys
TOP_LEVEL_RULES: dict[str, _Rule] = {"log_every_s": _POSITIVE, "seed": _SEED}
SECTIONS = ("data", "model", "optim", "trainer", "eval", "sample")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_problem(key: str, value: Any, rule: _Rule | None) -> str | None:
    """What is wrong with ``value`` of ``key`` (non-finite, or outside ``rule``), or None."""
    if not _is_number(value):
        return None
    if not math.isfinite(value):
        return f"{key}={value} must be a finite number"
    if rule is not None and not rule[0](value):
        return f"{key}={value} {rule[1]}"
    return None


def _node_problems(node: Any, where: str) -> list[str]:
    """Problems of every value in config node ``node`` (at dotted ``where``), nested nodes included."""
    problems = []
    for key in node.keys() if isinstance(node, DictConfig) else ():
        name = where + "." + str(key)
        if OmegaConf.is_missing(node, key):
            continue
        try:
            value = node.get(key)
        except OmegaConfBaseException:  # an interpolation that resolves only inside a Hydra job
            continue
        if isinstance(value, DictConfig):
            problems += _node_problems(value, name)
        elif isinstance(value, ListConfig) and key in LIST_RULES:
            ok, why = LIST_RULES[str(key)]
            bad = [v for v in value if _is_number(v) and (not math.isfinite(v) or not ok(v))]
            if bad:
                problems.append(f"{name}={list(value)} {why} (not {', '.join(map(str, bad))})")
        else:
            problem = _value_problem(name, value, RULES.get(str(key)))
            if problem:
                problems.append(problem)
    return problems


def config_problems(cfg: DictConfig) -> list[str]:
    problems = []
    for section in SECTIONS:
        node = cfg.get(section)
        if isinstance(node, DictConfig):
            problems += _node_problems(node, section)
    for key, rule in TOP_LEVEL_RULES.items():
        problem = _value_problem(key, cfg.get(key), rule)
        if problem:
            problems.append(problem)
    data = cfg.get("data")
    if isinstance(data, DictConfig):  # generated sets: the split sizes are known before anything is read
        n_train, batch = data.get("n_train"), data.get("batch_size")
        if _is_number(n_train) and _is_number(batch) and 1 <= n_train < batch:
            problems.append(f"data.n_train={n_train}: the training split has fewer than one batch of "
                            f"data.batch_size={batch}; lower data.batch_size or raise data.n_train")
    compile_value = cfg.get("compile", "auto")
    if not (isinstance(compile_value, bool) or compile_value == "auto"):
        problems.append(f"compile={compile_value} must be true, false or auto")
    trainer = cfg.get("trainer")
    if trainer is not None:
        problems += precision_problems(trainer)
    return problems


#: trainer.precision values funnelrun accepts: fp32/fp64, or mixed (the conditioners only: trainer.py)
PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "16-mixed")


def precision_problems(trainer: DictConfig) -> list[str]:
    """trainer.precision is one of PRECISIONS; 16-mixed and tf32 need a CUDA accelerator."""
    precision = str(trainer.get("precision", "32-true"))
    on_gpu = str(trainer.get("accelerator", "cpu")).lower() in GPU_ACCELERATORS
    problems = []
    if precision not in PRECISIONS:
        problems.append(
            f"trainer.precision={precision} is not supported; use one of {', '.join(PRECISIONS)} (mixed precisions "
            "run the conditioner nets alone in reduced precision; *-true reduced precisions would put every "
            "log-det in it)"
        )
    elif precision == "16-mixed" and not on_gpu:
        problems.append(
            "trainer.precision=16-mixed needs a CUDA GPU (trainer=gpu); on a CPU use trainer.precision=bf16-mixed"
        )
    if trainer.get("tf32", False) and not on_gpu:
        problems.append(
            "trainer.tf32=true applies to CUDA matmuls only (trainer=gpu); on a CPU leave it false "
            "(for faster conditioners here use trainer.precision=bf16-mixed)"
        )
    return problems


def config_warnings(cfg: DictConfig) -> list[str]:
    """Settings that run but probably not as meant (printed before training starts)."""
    trainer = cfg.get("trainer")
    warnings = []
    if isinstance(trainer, DictConfig):
        steps, interval = trainer.get("max_steps"), trainer.get("val_check_interval")
        if _is_number(steps) and _is_number(interval) and 0 < steps < interval:
            warnings.append(
                f"trainer.val_check_interval={interval} is beyond trainer.max_steps={steps}: no validation will "
                f"run, so no best checkpoint is chosen (val/nll null, the test uses the last weights); set "
                f"trainer.val_check_interval={steps} or less to validate"
            )
    return warnings


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
