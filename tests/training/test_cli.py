"""The ``funnelrun`` command end to end, in-process, on tiny configs."""
from __future__ import annotations

import csv
import math

import pytest

from conftest import TINY, TINY_NSF


def test_tiny_run_writes_finite_metrics(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY)
    assert result.code == 0, result.err
    m = result.metrics
    for key in ("test/nll", "latent_dim", "data_dim", "num_params", "exact", "steps", "train_seconds"):
        assert key in m
    assert math.isfinite(m["test/nll"])
    assert m["test/bpd"] is None  # continuous 2-D data: BPD undefined
    assert (m["latent_dim"], m["data_dim"], m["exact"], m["steps"]) == (1, 2, True, 6)
    assert m["num_params"] > 0
    assert (result.run_dir / "config.yaml").is_file()
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (result.run_dir / "density.png").stat().st_size > 1000
    assert "test log-likelihood" in result.out and str(result.run_dir) in result.out


def test_resume_continues_from_its_step(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli(run_dir, *TINY_NSF, "model=nsf")
    assert first.code == 0, first.err
    resumed = run_cli(run_dir, *TINY_NSF, "model=nsf", "ckpt_path=last", "trainer.max_steps=12")
    assert resumed.code == 0, resumed.err
    assert resumed.metrics["steps"] == 12
    def logged_steps(version: int) -> list[int]:
        with open(run_dir / "csv" / f"version_{version}" / "metrics.csv") as f:
            return [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]

    # the first process's log is kept; the resumed one logged only the steps after step 6
    assert logged_steps(0) == list(range(6))
    assert logged_steps(1) == list(range(6, 12))


def test_misspelt_group_option_lists_valid_ones(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", "model=f_nfs")
    assert result.code != 0
    assert "f_nfs" in result.err and "f_nsf" in result.err and "nsf" in result.err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_misspelt_key_is_named(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", "model.hiden_features=3")
    assert result.code != 0
    assert "hiden_features" in result.err


def test_wrongly_typed_value_is_named(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", "model.num_bins=many")
    assert result.code != 0
    assert "num_bins" in result.err


def test_invalid_enum_value_lists_choices(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", "model.transform=coupl")
    assert result.code != 0
    assert "transform" in result.err and "coupling" in result.err


def test_never_writes_into_an_earlier_run(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(run_dir, *TINY).code == 0
    before = (run_dir / "metrics.json").read_bytes()
    again = run_cli(run_dir, *TINY, "seed=1")
    assert again.code != 0
    assert "already holds a run" in again.err
    # the run finished: the hints extend it in place (only a larger trainer.max_steps, its results kept
    # in history/) or continue it in a new directory
    assert "ckpt_path=last trainer.max_steps=<more steps> (its results so far are kept in history/)" in again.err
    assert f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'} trainer.max_steps=" in again.err
    assert (run_dir / "metrics.json").read_bytes() == before


def test_checkpoint_from_another_model_is_refused(run_cli, tmp_path):
    first = run_cli(tmp_path / "a", *TINY)
    assert first.code == 0, first.err
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    other = run_cli(tmp_path / "b", *TINY_NSF, "model=nsf", f"ckpt_path={ckpt}")
    assert other.code != 0
    assert "another model" in other.err and str(ckpt) in other.err
    assert not (tmp_path / "b" / "metrics.json").exists()


def test_continuing_from_another_runs_checkpoint_uses_a_new_directory(run_cli, tmp_path):
    assert run_cli(tmp_path / "a", *TINY).code == 0
    before = (tmp_path / "a" / "metrics.json").read_bytes()
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    cont = run_cli(tmp_path / "b", *TINY, f"ckpt_path={ckpt}", "trainer.max_steps=9")
    assert cont.code == 0, cont.err
    assert cont.metrics["steps"] == 9
    assert (tmp_path / "a" / "metrics.json").read_bytes() == before


def test_resume_without_a_checkpoint_says_how(run_cli, tmp_path):
    result = run_cli(tmp_path / "fresh", *TINY, "ckpt_path=last")
    assert result.code != 0
    assert "no checkpoint" in result.err and "hydra.run.dir" in result.err


def test_wandb_logger_runs_offline_and_keeps_the_run_for_sync(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    result = run_cli(tmp_path / "run", *TINY, "logger=wandb")
    assert result.code == 0, result.err
    assert "W&B: offline" in result.out and "wandb sync" in result.out
    offline_runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert any(offline_runs[0].glob("*.wandb"))


@pytest.mark.slow
def test_compiled_training_reports_compile_time(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY_NSF, "model=nsf", "compile=true")
    assert result.code == 0, result.err
    assert result.metrics["compile_seconds"] > 0 and math.isfinite(result.metrics["test/nll"])


def test_a_checkpoint_of_other_settings_names_only_the_keys_that_differ(run_cli, tmp_path):
    assert run_cli(tmp_path / "a", *TINY).code == 0
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    other = run_cli(tmp_path / "b", *TINY, "model.hidden_features=17", f"ckpt_path={ckpt}")
    assert other.code == 2
    (line,) = [line for line in other.err.splitlines() if "checkpoint has" in line]
    assert line.strip() == "model.hidden_features: checkpoint has 16, this run has 17"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_groups_keys_and_the_other_tools_without_hydras_internals(capsys, monkeypatch, flag):
    import sys

    from funnelrun.cli import main

    monkeypatch.setattr(sys, "argv", ["funnelrun", flag, "model=nsf"])
    main()
    out = capsys.readouterr().out
    assert "usage: funnelrun" in out and "hydra/launcher  local, slurm" in out and "schema/" not in out
    assert "funnelrun-eval ckpt_path=<run>" in out and "log_every_s" in out
    assert "_target_: funnelrun.models.nsf.build_nsf" in out  # the config with the overrides given


def test_debug_fast_says_its_test_covers_part_of_the_split(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY, "debug=fast", "trainer.max_steps=4", "data.eval_batch_size=100")
    assert result.code == 0, result.err
    m = result.metrics
    assert (m["test/examples"], m["test/split_examples"]) == (200, 300)
    assert "over 200 of the 300 test examples (trainer.limit_test_batches)" in result.out


def test_a_training_split_smaller_than_a_batch_is_refused(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY, "data.n_train=10", "trainer.max_steps=12")
    assert result.code == 2 and "fewer than one batch" in result.err, result.err[-2000:]
    assert not (tmp_path / "run" / "metrics.json").exists()
