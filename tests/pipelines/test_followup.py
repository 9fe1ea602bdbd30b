"""The follow-up tools read the run (funnelrun/pipelines/followup.py): ``ckpt_path=<run dir>`` alone
is enough; overrides change only what may change; a real mismatch names only the differing keys."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from funnelrun.cli import sample_main
from funnelrun.errors import FunnelrunError
from funnelrun.pipelines.followup import read_run, run_location

from conftest import TINY, train_in_process

pytestmark = pytest.mark.usefixtures("one_thread")
#: a run whose model differs from the defaults (num_bins, latent size of a 3-D funnel... on 2-D: bins)
TRAINED = [*TINY, "model.num_bins=5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> "object":
    return train_in_process(tmp_path_factory.mktemp("followup") / "run", TRAINED)


def test_the_run_directory_alone_rebuilds_its_model(run):
    loaded = read_run([f"ckpt_path={run}"], "funnelrun-sample")
    assert loaded.config.model.num_bins == 5 and loaded.path == run
    best = json.loads((run / "metrics.json").read_text())["best_checkpoint"]
    assert str(loaded.checkpoint) == best  # its best-by-validation checkpoint
    by_last = read_run([f"hydra.run.dir={run}", "ckpt_path=last"], "funnelrun-sample")
    assert by_last.checkpoint == run / "checkpoints" / "last.ckpt"


def test_settings_that_may_change_are_applied(run):
    loaded = read_run([f"ckpt_path={run}", "sample.num_samples=7", "eval.is_samples=3", "seed=5",
                       "data.eval_batch_size=11"], "funnelrun-sample")
    cfg = loaded.config
    assert (cfg.sample.num_samples, cfg.eval.is_samples, cfg.seed, cfg.data.eval_batch_size) == (7, 3, 5, 11)
    assert loaded.datamodule.eval_batch_size == 11


def test_the_runs_own_settings_typed_again_are_accepted(run):
    read_run([*TRAINED, "model=f_nsf", "data=four_circles", f"ckpt_path={run}"], "funnelrun-sample")


def test_a_mismatch_names_only_the_differing_keys(run):
    with pytest.raises(FunnelrunError) as info:
        read_run([f"ckpt_path={run}", "model.num_bins=6", "data.n_test=300", "data=checkerboard"], "funnelrun-eval")
    message = str(info.value)
    assert "model.num_bins: the run has 5, this command 6 (model.num_bins=6)" in message
    assert "data.name: the run has 'four_circles', this command 'checkerboard' (data=checkerboard)" in message
    assert "n_test" not in message  # equal to the run's: not listed
    assert "funnelrun-eval reads the model and data settings from" in message and "sample.*" in message


def test_settings_of_another_tool_are_refused(run):
    with pytest.raises(FunnelrunError, match="logger=wandb: not a setting of funnelrun-sample"):
        read_run([f"ckpt_path={run}", "logger=wandb"], "funnelrun-sample")


def test_a_misspelt_or_wrongly_typed_override_is_explained(run):
    with pytest.raises(FunnelrunError, match="did you mean sample.num_samples=5"):
        read_run([f"ckpt_path={run}", "sample.num_sample=5"], "funnelrun-sample")
    with pytest.raises(FunnelrunError, match="sample.num_samples=many: .*could not be converted to Integer"):
        read_run([f"ckpt_path={run}", "sample.num_samples=many"], "funnelrun-sample")


def test_where_the_run_is_comes_with_its_fix(tmp_path):
    with pytest.raises(FunnelrunError, match=r"needs the trained run: ckpt_path=<its directory>"):
        run_location(["sample.num_samples=3"], "funnelrun-sample")
    with pytest.raises(FunnelrunError, match=r"ckpt_path=last names a checkpoint of the run given by hydra.run.dir"):
        run_location(["ckpt_path=last"], "funnelrun-sample")
    with pytest.raises(FunnelrunError, match="no checkpoint or run directory at"):
        run_location([f"ckpt_path={tmp_path / 'nope'}"], "funnelrun-sample")


def test_a_run_written_before_the_sample_section_existed_gets_the_defaults(run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run, old)
    config = yaml.safe_load((old / "config.yaml").read_text())
    for key in ("sample", "log_every_s"):
        config.pop(key)
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = read_run([f"ckpt_path={old}"], "funnelrun-sample")
    assert loaded.config.sample.num_samples == 1000 and loaded.config.log_every_s == 30.0


def test_sample_writes_into_a_new_directory_of_the_run(run, capsys):
    sample_main([f"ckpt_path={run}", "sample.num_samples=10"])
    (out,) = (run / "samples").iterdir()
    assert torch.load(out / "samples_T1.0.pt").shape == (10, 2)
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("tool", ["funnelrun-sample", "funnelrun-eval", "funnelrun-check"])
def test_every_tool_has_its_own_help(tool, capsys):
    import funnelrun.cli as cli

    entry = {"funnelrun-sample": cli.sample_main, "funnelrun-eval": cli.eval_main, "funnelrun-check": cli.check_main}
    entry[tool](["--help"])
    out = capsys.readouterr().out
    assert out.startswith(f"{tool}: ") and f"usage: {tool}" in out and "ckpt_path=<run dir>" in out
    assert "data.data_dir" in out  # what may change
