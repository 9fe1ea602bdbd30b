"""Run directories: one per run, never reused except to resume that run."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from funnelrun.errors import FunnelrunError
from funnelrun.run_files import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, write_atomic


def holds_run(run_dir: Path) -> bool:
    return (run_dir / CONFIG_FILE).exists() or (run_dir / CHECKPOINT_DIR).exists() or (run_dir / METRICS_FILE).exists()


def interrupted(run_dir: Path) -> bool:
    """The directory holds a run that saved a checkpoint but never finished (no metrics.json): a
    job stopped by SIGTERM/SIGUSR1, a timeout or a preemption, that a relaunch continues."""
    return (run_dir / CHECKPOINT_DIR / "last.ckpt").is_file() and not (run_dir / METRICS_FILE).exists()


def prepare_run_dir(run_dir: Path, cfg: DictConfig, resume_here: bool) -> None:
    """Refuse to write into an earlier run's directory unless resuming it; save the resolved config."""
    if not os.access(run_dir, os.W_OK):
        raise FunnelrunError(f"cannot write to the run directory {run_dir}; choose another with hydra.run.dir=<dir>")
    if resume_here:
        if not (run_dir / CONFIG_FILE).exists():
            raise FunnelrunError(
                f"ckpt_path=last resumes the run in hydra.run.dir, but {run_dir} holds no funnelrun run "
                f"({CONFIG_FILE} missing); pass hydra.run.dir=<the run's directory>"
            )
        return
    config_text = OmegaConf.to_yaml(cfg, resolve=True)
    if _started_without_checkpoint(run_dir, config_text):
        print(f"restarting the run in {run_dir}: it stopped before its first checkpoint", flush=True)
        return
    if holds_run(run_dir):
        if (run_dir / METRICS_FILE).exists():  # finished: resuming it would rewrite its results
            how = (f"to train that run further, continue from its checkpoint in a new directory: "
                   f"ckpt_path={run_dir / CHECKPOINT_DIR / 'last.ckpt'} trainer.max_steps=<more steps>")
        else:
            how = "or resume that (unfinished) run with ckpt_path=last"
        raise FunnelrunError(
            f"{run_dir} already holds a run; funnelrun never writes into an earlier run's directory. "
            f"Leave hydra.run.dir unset for a fresh directory, {how}"
        )
    write_atomic(run_dir / CONFIG_FILE, config_text)


def _started_without_checkpoint(run_dir: Path, config_text: str) -> bool:
    """The same job (identical resolved config) started here and stopped before saving anything to
    resume from: starting it again loses nothing (logs go to a new version directory)."""
    config = run_dir / CONFIG_FILE
    return (
        config.is_file()
        and config.read_text() == config_text
        and not (run_dir / CHECKPOINT_DIR / "last.ckpt").exists()
        and not (run_dir / METRICS_FILE).exists()
    )
