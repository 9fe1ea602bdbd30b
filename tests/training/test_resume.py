"""Resume continues exactly what was asked, from the newest state, wherever the run directory is now.

Interruptions are injected in-process at a chosen step (a SIGUSR1 to this process, which funnelrun
handles as SLURM's warning: save ``last.ckpt`` at the step boundary and stop; or an exception that
kills the run after a validation has saved, standing in for a crash)."""
from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch

from funnelrun.training.module import DensityEstimator

from conftest import TINY_NSF, run_funnelrun

pytestmark = pytest.mark.usefixtures("one_thread")
#: first validation (and checkpoint by ModelCheckpoint) at step 8, the end at 12
RUN = [*TINY_NSF, "model=nsf", "eval.plot=false", "trainer.max_steps=12", "trainer.val_check_interval=8"]


class Crash(RuntimeError):
    pass


def _interrupt_at(monkeypatch, step: int, how: str) -> None:
    real = DensityEstimator.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == step:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGUSR1)
            else:
                raise Crash(f"crash at step {step}")
        return real(self, batch, batch_idx)

    monkeypatch.setattr(DensityEstimator, "training_step", training_step)


def _step(ckpt) -> int:
    return torch.load(ckpt, weights_only=True)["global_step"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    run_funnelrun(run_dir, *RUN)
    return json.loads((run_dir / "metrics.json").read_text())


def test_stopped_before_the_first_validation_then_crashed_resumes_from_the_newest_step(
        run_cli, tmp_path, monkeypatch, uninterrupted):
    run_dir = tmp_path / "run"
    ckpts = run_dir / "checkpoints"
    with monkeypatch.context() as mp:
        _interrupt_at(mp, 3, "signal")
        first = run_cli(run_dir, *RUN)
    assert first.code == 143, first.err[-2000:]
    assert _step(ckpts / "last.ckpt") == 4
    with monkeypatch.context() as mp:
        _interrupt_at(mp, 10, "crash")  # after the validation at step 8 saved last.ckpt
        second = run_cli(run_dir, *RUN, "ckpt_path=last")
    assert second.code != 0
    assert sorted(p.name for p in ckpts.iterdir()) == ["best-step8.ckpt", "last.ckpt"]  # no last-v1.ckpt
    assert _step(ckpts / "last.ckpt") == 8  # the newest state, not step 4's
    third = run_cli(run_dir, *RUN)  # the same command again: auto_resume from step 8
    assert third.code == 0, third.err[-2000:]
    assert third.metrics["steps"] == 12
    assert abs(third.metrics["test/nll"] - uninterrupted["test/nll"]) <= 1e-6
    assert third.metrics["val/nll"] == pytest.approx(uninterrupted["val/nll"], abs=1e-6)


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_moved_or_copied_run_directory_resumes_with_its_best_checkpoint(run_cli, tmp_path, monkeypatch,
                                                                          uninterrupted, how):
    original = tmp_path / "original"
    with monkeypatch.context() as mp:
        _interrupt_at(mp, 10, "signal")  # after the first validation: a best checkpoint exists
        stopped = run_cli(original, *RUN)
    assert stopped.code == 143, stopped.err[-2000:]
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    (shutil.move if how == "moved" else shutil.copytree)(original, moved)
    before = {p.name: p.stat().st_mtime_ns for p in (original / "checkpoints").iterdir()} if how == "copied" else {}
    resumed = run_cli(moved, *RUN, "ckpt_path=last")
    assert resumed.code == 0, resumed.err[-2000:]
    metrics = resumed.metrics
    assert metrics["val/nll"] is not None and metrics["val/nll"] == pytest.approx(uninterrupted["val/nll"], abs=1e-6)
    assert abs(metrics["test/nll"] - uninterrupted["test/nll"]) <= 1e-6
    assert metrics["best_checkpoint"] == "checkpoints/best-step8.ckpt" and (moved / metrics["best_checkpoint"]).is_file()
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == ["best-step8.ckpt", "last.ckpt"]
    if how == "copied":  # the original is left alone
        assert {p.name: p.stat().st_mtime_ns for p in (original / "checkpoints").iterdir()} == before
        assert not (original / "metrics.json").exists()


# -- a finished run is never rewritten; extending it keeps its results --------------------------------
FINISHED = [o for o in RUN if o != "eval.plot=false"]  # with its density.png


def _snapshot(run_dir):
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != "funnelrun.log"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    run_funnelrun(run_dir, *FINISHED)
    assert (run_dir / "density.png").is_file()
    return run_dir


@pytest.fixture
def finished(finished_run, tmp_path):
    run_dir = tmp_path / "finished"
    shutil.copytree(finished_run, run_dir)
    return run_dir


@pytest.mark.parametrize("extra,fragments", [
    ([], ["finished run (12 steps", "nothing more to train", "trainer.max_steps=<more than 12>"]),
    (["data.n_test=1"], ["finished run with other settings", "data.n_test: config.yaml records 300, this command has 1"]),
    (["data=two_moons"], ["other settings", "data.name"]),
    (["trainer.max_steps=20", "optim.lr=0.01"], ["other settings", "optim.lr"]),
], ids=["nothing new", "other test size", "other data", "longer with another lr"])
def test_resuming_a_finished_run_never_rewrites_it(run_cli, finished, extra, fragments):
    before = _snapshot(finished)
    result = run_cli(finished, *FINISHED, *extra, "ckpt_path=last")
    assert result.code == 2, result.err[-2000:]
    for fragment in fragments:
        assert fragment in result.err, result.err[-2000:]
    assert "Traceback" not in result.err
    assert _snapshot(finished) == before  # byte-identical, nothing added


def test_extending_a_finished_run_continues_it_and_keeps_its_results(run_cli, finished):
    before = _snapshot(finished)
    result = run_cli(finished, *FINISHED, "trainer.max_steps=18", "ckpt_path=last")
    assert result.code == 0, result.err[-2000:]
    assert "extending the finished run" in result.out
    assert result.metrics["steps"] == 18
    history = finished / "history" / "step12"
    for name in ("metrics.json", "config.yaml", "density.png"):
        assert (history / name).read_bytes() == before[name]
    assert (history / before_best(before)).is_file()
    assert "max_steps: 18" in (finished / "config.yaml").read_text()
    assert (finished / "density.png").read_bytes() != before["density.png"]  # the extended model's
    last = torch.load(finished / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 18 and last["lr_schedulers"][0]["T_max"] == 18


def before_best(snapshot) -> str:
    (best,) = [k for k in snapshot if k.startswith("checkpoints/best-")]
    return best


def test_continuing_in_a_new_directory_follows_the_new_schedule(run_cli, finished, tmp_path):
    result = run_cli(tmp_path / "new", *FINISHED, f"ckpt_path={finished / 'checkpoints' / 'last.ckpt'}",
                     "trainer.max_steps=30", "optim.lr=0.003")
    assert result.code == 0, result.err[-2000:]
    assert "with this run's schedule: cosine from optim.lr=0.003 over trainer.max_steps=30" in result.out
    last = torch.load(tmp_path / "new" / "checkpoints" / "last.ckpt", weights_only=True)
    sched, group = last["lr_schedulers"][0], last["optimizer_states"][0]["param_groups"][0]
    assert sched["T_max"] == 30 and sched["base_lrs"] == [0.003] and group["initial_lr"] == 0.003
    # the old schedule (T_max 12) restored would cycle back up to lr / 2 at step 30; this one ends at 0
    assert last["global_step"] == 30 and abs(group["lr"]) < 1e-12
    recorded = (tmp_path / "new" / "config.yaml").read_text()
    assert "lr: 0.003" in recorded and "max_steps: 30" in recorded


def test_continuing_in_a_new_directory_without_a_validation_tests_its_own_weights(run_cli, finished, tmp_path):
    """The earlier run's best checkpoint stays in that run: the new one neither reads it as its own
    best (it is not in the new directory) nor touches it; with no validation of its own, it tests its
    final weights and reports val/nll null (README: "continue in a new dir")."""
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file() and p.name != "funnelrun.log"}
    result = run_cli(tmp_path / "new", *FINISHED, f"ckpt_path={finished / 'checkpoints' / 'last.ckpt'}",
                     "trainer.max_steps=14", "trainer.val_check_interval=8")
    assert result.code == 0, result.err[-2000:]
    metrics = json.loads((tmp_path / "new" / "metrics.json").read_text())
    assert metrics["steps"] == 14 and metrics["val/nll"] is None and metrics["best_checkpoint"] is None
    assert metrics["test/nll"] is not None
    assert {p: p.read_bytes() for p in before} == before


def test_the_schedule_rebuilt_mid_way_is_the_closed_form_cosine():
    from funnelrun.training.module import cosine_lr

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40)
    for step in range(1, 41):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(cosine_lr(0.5, step, 40), abs=1e-12)


def test_an_interrupted_run_resumed_with_other_settings_records_them(run_cli, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as mp:
        _interrupt_at(mp, 3, "signal")
        assert run_cli(run_dir, *RUN).code == 143
    resumed = run_cli(run_dir, *RUN, "trainer.val_check_interval=6", "ckpt_path=last")
    assert resumed.code == 0, resumed.err[-2000:]
    assert "trainer.val_check_interval: 8 -> 6" in resumed.out
    assert "val_check_interval: 6" in (run_dir / "config.yaml").read_text()  # what ran
