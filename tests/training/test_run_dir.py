"""Run directories: when a relaunch may continue in an existing directory, and when it must refuse."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from funnelrun.errors import FunnelrunError
from funnelrun.run_files import CONFIG_FILE
from funnelrun.training.loggers import WANDB_ID_FILE, wandb_run_id
from funnelrun.training.run_dir import interrupted, prepare_run_dir


def test_interrupted_means_a_checkpoint_and_no_metrics(tmp_path):
    assert not interrupted(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert interrupted(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    assert not interrupted(tmp_path)


def test_a_job_stopped_before_its_first_checkpoint_restarts_with_the_same_config_only(tmp_path):
    cfg = OmegaConf.create({"seed": 0, "model": {"num_steps": 2}})
    prepare_run_dir(tmp_path, cfg, resume_here=False)
    written = (tmp_path / CONFIG_FILE).read_text()
    prepare_run_dir(tmp_path, cfg, resume_here=False)  # the same job again: allowed, nothing changes
    assert (tmp_path / CONFIG_FILE).read_text() == written
    with pytest.raises(FunnelrunError, match="already holds a run"):
        prepare_run_dir(tmp_path, OmegaConf.create({"seed": 1, "model": {"num_steps": 2}}), resume_here=False)
    assert (tmp_path / CONFIG_FILE).read_text() == written


def test_a_finished_run_is_never_restarted(tmp_path):
    cfg = OmegaConf.create({"seed": 0})
    prepare_run_dir(tmp_path, cfg, resume_here=False)
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(FunnelrunError, match="already holds a run"):
        prepare_run_dir(tmp_path, cfg, resume_here=False)


def test_the_wandb_run_id_is_made_once_per_run_directory(tmp_path):
    first = wandb_run_id(tmp_path)
    assert (tmp_path / WANDB_ID_FILE).read_text().strip() == first
    assert wandb_run_id(tmp_path) == first
    assert wandb_run_id(tmp_path / "other") != first
