"""Run directories: one per run, never reused except to resume that run."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from funnelrun.checkpoint import differences
from funnelrun.errors import FunnelrunError
from funnelrun.run_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    HISTORY_DIR,
    METRICS_FILE,
    TMP_SUFFIX,
    fsync_dir,
    write_atomic,
)


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
    config_text = OmegaConf.to_yaml(cfg, resolve=True)
    if resume_here:
        if not (run_dir / CONFIG_FILE).exists():
            raise FunnelrunError(
                f"ckpt_path=last resumes the run in hydra.run.dir, but {run_dir} holds no funnelrun run "
                f"({CONFIG_FILE} missing); pass hydra.run.dir=<the run's directory>"
            )
        _check_resume(run_dir, cfg, config_text)
        return
    if _started_without_checkpoint(run_dir, config_text):
        print(f"restarting the run in {run_dir}: it stopped before its first checkpoint", flush=True)
        return
    if holds_run(run_dir):
        if (run_dir / METRICS_FILE).exists():  # finished: resuming it would rewrite its results
            how = (f"to train that run further, extend it in place with ckpt_path=last trainer.max_steps=<more "
                   f"steps> (its results so far are kept in {HISTORY_DIR}/), or continue from its checkpoint in "
                   f"a new directory: ckpt_path={run_dir / CHECKPOINT_DIR / 'last.ckpt'} trainer.max_steps=<more>")
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


#: settings a resume in place may change: they do not change what the run computes
RESUME_MAY_CHANGE = ("ckpt_path", "auto_resume", "log_every_s", "data.num_workers", "data.data_dir",
                     "data.cache_dir", "trainer.enable_progress_bar")
MAX_STEPS = "trainer.max_steps"


def _check_resume(run_dir: Path, cfg: DictConfig, config_text: str) -> None:
    """Resuming in place. A finished run is never rewritten: the one change that continues it is a
    larger ``trainer.max_steps`` (its earlier results move to ``history/step<N>/``); any other
    setting than ``config.yaml``'s, or nothing new to train, is refused. An interrupted run resumes
    with the settings given (the checkpoint's model and data shape are checked elsewhere), and
    ``config.yaml`` is rewritten to record them, with a note naming what changed: what it records is
    what ran."""
    recorded = yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}
    wanted = yaml.safe_load(config_text)
    changed = [(k, a, b) for k, a, b in differences(recorded, wanted) if k not in RESUME_MAY_CHANGE]
    last = run_dir / CHECKPOINT_DIR / "last.ckpt"
    elsewhere = f"ckpt_path={last} <the settings you want>"
    metrics_file = run_dir / METRICS_FILE
    if metrics_file.exists():
        diffs = [(k, a, b) for k, a, b in changed if k != MAX_STEPS]
        if diffs:
            listed = "\n  ".join(f"{k}: {CONFIG_FILE} records {a!r}, this command has {b!r}" for k, a, b in diffs)
            raise FunnelrunError(
                f"{run_dir} holds a finished run with other settings; funnelrun never rewrites a finished "
                f"run's results:\n  {listed}\nExtend it with its own settings (only {MAX_STEPS} may grow), or "
                f"continue from its checkpoint in a new directory (no hydra.run.dir): {elsewhere}"
            )
        steps = int((json.loads(metrics_file.read_text()) or {}).get("steps") or 0)
        if int(cfg.trainer.max_steps) <= steps:
            raise FunnelrunError(
                f"{run_dir} holds a finished run ({steps} steps, {METRICS_FILE}); there is nothing more to "
                f"train, and funnelrun never rewrites a finished run's results. To train it further, add "
                f"{MAX_STEPS}=<more than {steps}> (its results so far move to {HISTORY_DIR}/step{steps}/), "
                f"or continue in a new directory: {elsewhere}"
            )
        archive_results(run_dir, steps)
        print(f"extending the finished run in {run_dir} from step {steps} to {cfg.trainer.max_steps}; its "
              f"results so far are in {run_dir / HISTORY_DIR / f'step{steps}'}", flush=True)
    elif changed:
        print(f"resuming {run_dir} with settings other than its {CONFIG_FILE} recorded; it records them now: "
              + ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed), flush=True)
    if changed:
        write_atomic(run_dir / CONFIG_FILE, config_text)


def archive_results(run_dir: Path, steps: int) -> Path:
    """Keep a finished run's results in ``history/step<steps>/`` before it is extended: its metrics,
    config and plots (moved: the extension writes new ones) and its best checkpoint (a hard link, so
    a better one replacing it later leaves this one). ``metrics.json`` moves last, so a crash midway
    leaves the run finished as it was."""
    history = run_dir / HISTORY_DIR / f"step{steps}"
    if not history.exists():
        building = history.with_name(history.name + TMP_SUFFIX)
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        keep = [run_dir / CONFIG_FILE, run_dir / METRICS_FILE, *run_dir.glob("*.png")]
        for path in keep:
            shutil.copy2(path, building / path.name)
        best = metrics.get("best_checkpoint")
        if best:
            source = run_dir / best
            (building / CHECKPOINT_DIR).mkdir()
            try:
                os.link(source, building / CHECKPOINT_DIR / source.name)
            except OSError:
                shutil.copy2(source, building / CHECKPOINT_DIR / source.name)
        fsync_dir(building)
        os.replace(building, history)
        fsync_dir(history.parent)
    for path in run_dir.glob("*.png"):
        path.unlink()
    (run_dir / METRICS_FILE).unlink()
    fsync_dir(run_dir)
    return history
