"""Config errors as a user meets them (funnelrun/overrides.py, config.check_overrides, cli.main):
``funnelrun: error:``, what was wrong, the fix, exit status 2, no traceback, Hydra's ``+key`` advice
never repeated, and no output directory made."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from funnelrun.config import check_overrides
from funnelrun.errors import FunnelrunError

FUNNELRUN = str(Path(sys.executable).with_name("funnelrun"))

#: (overrides, fragments of the message)
MISTAKES = [
    (["trainer.max_step=10"], ["trainer.max_step is not a config key", "did you mean trainer.max_steps=10?"]),
    (["model=fnsf"], ["model=fnsf is not an option of the model group", "did you mean model=f_nsf?", "nsf, realnvp"]),
    (["trainer.max_steps=abc"], ["trainer.max_steps=abc", "could not be converted to Integer",
                                 "its value without this override: 3000"]),
    (["sed=1"], ["did you mean seed=1?"]),
    (["modle=nsf"], ["did you mean model=nsf?"]),
    (["data=digits", "model.image.levls=3"], ["did you mean model.image.levels=3?"]),
    (["experiment=table1/power_fnsf"], ["did you mean experiment=table1/power_f_nsf?"]),
    (["hydra/launcher=slrum"], ["did you mean hydra/launcher=slurm?"]),
    (["model.transform=coupl"], ["expected one of [coupling, autoregressive, affine]"]),
    (["seed=0,1"], ["add -m to run one job per value", "seed=[0,1]"]),
    (["+seed=3"], ["drop the '+'"]),
    (["data.batch_size=[1"], ["could not read the override 'data.batch_size=[1'", "quote a value"]),
    (["optim.lr=-1"], ["optim.lr=-1.0 must be positive"]),
    (["log_every_s=0"], ["log_every_s=0.0 must be positive"]),
]


@pytest.mark.parametrize("overrides,fragments", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_config_errors_name_the_fix(overrides, fragments):
    with pytest.raises(FunnelrunError) as info:
        check_overrides(overrides)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "To append to your config use +" not in message and "HYDRA_FULL_ERROR" not in message


def test_every_value_of_a_sweep_is_checked():
    check_overrides(["model=nsf,f_nsf", "seed=0,1"], multirun=True)
    with pytest.raises(FunnelrunError, match="model=fnsf is not an option"):
        check_overrides(["model=nsf,fnsf", "seed=0,1"], multirun=True)
    with pytest.raises(FunnelrunError, match="trainer.max_steps=-2 must be at least 0"):
        check_overrides(["trainer.max_steps=10,-2"], multirun=True)


def test_a_sweep_only_its_sweeper_lists_is_left_to_it():
    check_overrides(["hparams_search=f_nsf_optuna", "optim.lr=interval(0.0001,0.01)"], multirun=True)


def _funnelrun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([FUNNELRUN, *overrides, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("override", ["trainer.max_step=10", "model=fnsf", "trainer.max_steps=abc"])
def test_the_command_line_answers_with_exit_status_2_and_makes_no_directory(tmp_path, override):
    proc = _funnelrun(tmp_path, override)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("funnelrun: error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and "+trainer" not in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_trainer_without_a_gpu_is_refused_before_anything_runs(tmp_path):
    proc = _funnelrun(tmp_path, "trainer=gpu")
    assert proc.returncode == 2
    assert proc.stderr.startswith("funnelrun: error: trainer.accelerator=gpu needs a CUDA GPU")
    assert "trainer=cpu" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_an_error_found_in_the_job_removes_the_directory_it_made(run_cli, tmp_path):
    """A problem only the model builder sees (an unreachable latent size) comes after Hydra made
    the run directory: the directory, holding nothing but the log of this failure, is removed."""
    result = run_cli(tmp_path / "run", "data=digits", "model.latent_dim=5", "model.image.hidden_channels=4")
    assert result.code == 2 and "latent_dim=5 is not reachable" in result.err
    assert not (tmp_path / "run").exists()


def test_an_error_in_an_existing_directory_leaves_it_alone(run_cli, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = run_cli(tmp_path / "run", "data=digits", "model.latent_dim=5", "model.image.hidden_channels=4")
    assert result.code == 2
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
