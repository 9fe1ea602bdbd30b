"""Multiruns: a 2-job submitit_local sweep runs and tables; the SLURM launcher's settings compose
into the sbatch script SLURM would get; an Optuna search minimises its trials' validation NLL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from funnelrun.config import register_configs
from funnelrun.evaluation.report import find_runs

from conftest import TINY, TINY_NSF

BIN = Path(sys.executable).parent


def test_a_two_job_submitit_local_sweep_completes_and_tables(tmp_path):
    env = {**os.environ, "FUNNELRUN_OUTPUT_DIR": str(tmp_path), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(BIN / "funnelrun"), "-m", "hydra/launcher=local", "model=nsf", *TINY_NSF, "eval.plot=false", "seed=0,1"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = [p for p in tmp_path.glob("*/*") if (p / "multirun.yaml").exists()]
    assert sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists()) == ["0", "1"]
    assert any((sweep / ".submitit").iterdir())  # the jobs really went through submitit
    report = subprocess.run([str(BIN / "funnelrun-report"), str(sweep)], capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "nsf-four_circles" in report.stdout and "0,1" in report.stdout
    assert len(find_runs([sweep])) == 2


def _launcher_params(*overrides: str) -> dict:
    register_configs()
    with initialize_config_module(config_module="funnelrun.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_launcher_starts_one_task_per_gpu_and_requeues(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = _launcher_params("trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                              "hydra.launcher.partition=gpu", "hydra.launcher.account=lab")
    assert params["_target_"].endswith("SlurmLauncher")
    assert params["gpus_per_node"] == params["tasks_per_node"] == 4 and params["nodes"] == 2
    # build the sbatch script as the launcher would, without a cluster (submitit looks for srun)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm", slurm_max_num_timeout=params["max_num_timeout"])
    skip = {"submitit_folder", "max_num_timeout", "_target_"}
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items() if k not in skip})
    script = executor._executor._make_submission_file_text("python -u job.py", "uid")
    for line in ("--gpus-per-node=4", "--ntasks-per-node=4", "--nodes=2", "--partition=gpu", "--account=lab",
                 "--signal=USR2@120", "--time=1440"):
        assert line in script, script
    assert executor._executor.max_num_timeout == 20


def test_optuna_search_minimises_the_validation_nll_of_its_trials(tmp_path):
    env = {**os.environ, "FUNNELRUN_OUTPUT_DIR": str(tmp_path), "WANDB_MODE": "offline"}
    tiny = [o for o in TINY_NSF if not o.startswith(("model.hidden_features", "model.num_bins"))]
    proc = subprocess.run(
        [str(BIN / "funnelrun"), "hparams_search=f_nsf_optuna", "hydra.sweeper.n_trials=2", *tiny,
         "model.conditional_hidden_features=8", "eval.plot=false"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = tmp_path.glob("*/*/optimization_results.yaml")
    best = OmegaConf.load(result)
    trials = [json.loads(p.read_text()) for p in result.parent.glob("*/metrics.json")]
    assert len(trials) == 2
    assert best.best_value == pytest.approx(min(t["val/nll"] for t in trials))
    assert set(best.best_params) == {"optim.lr", "model.hidden_features", "model.num_bins"}


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    """The first job fails when it builds its model (a 2-D funnel cannot keep 2 dimensions: found
    at build time, not by the up-front config check, which already refuses e.g. model.num_bins=0
    for every job before any starts); the next job still runs, the failing one's directory says
    why, the sweep exits 1 with the count, and funnelrun-report lists it as failed."""
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [str(BIN / "funnelrun"), "-m", "model=f_nsf", *TINY, "eval.plot=false", "model.latent_dim=2,1",
         f"hydra.sweep.dir={sweep}"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"funnelrun: 1 of 2 sweep jobs failed (each directory's failure.json says why): {sweep / '0'}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (sweep / "1" / "metrics.json").is_file() and not (sweep / "0" / "metrics.json").exists()
    failure = json.loads((sweep / "0" / "failure.json").read_text())
    assert "drop between 1 and 1" in failure["error"] and "model.latent_dim=2" in failure["overrides"]
    report = subprocess.run([str(BIN / "funnelrun-report"), str(sweep)], capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "failed (failure.json: a funnel on 2-D data" in report.stdout, report.stdout
    assert "(1 seed)" in report.stdout and "nan" not in report.stdout


def test_an_optuna_search_records_a_failing_trial_as_failed_and_goes_on(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "search"
    tiny = [o for o in TINY if not o.startswith(("model.hidden_features", "model.num_bins"))]
    proc = subprocess.run(
        [str(BIN / "funnelrun"), "hparams_search=f_nsf_optuna", "hydra.sweeper.n_trials=3", *tiny, "eval.plot=false",
         "hydra.sweeper.params={model.hidden_features:'choice(0,8)',model.num_bins:'choice(4)'}",
         f"hydra.sweep.dir={sweep}"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    failed = sorted(p.parent.name for p in sweep.glob("*/failure.json"))
    done = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert len(failed) + len(done) == 3 and failed and done, (failed, done, proc.stderr[-3000:])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"funnelrun: {len(failed)} of 3 sweep jobs failed" in proc.stderr
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_params["model.hidden_features"] == 8
    for name in failed:  # hidden_features=0, found when the trial composed its config
        assert "model.hidden_features=0" in json.loads((sweep / name / "failure.json").read_text())["error"]
