"""Shared fixtures: run the ``funnelrun`` CLI in-process on tiny configs."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

#: overrides that make any plane run take a second or two
TINY = [
    "model.hidden_features=16",
    "model.num_blocks=1",
    "model.num_bins=4",
    "model.conditional_hidden_features=8",
    "data.n_train=512",
    "data.n_val=256",
    "data.n_test=300",
    "data.batch_size=64",
    "data.eval_batch_size=128",
    "trainer.max_steps=6",
    "trainer.val_check_interval=3",
    "trainer.log_every_n_steps=1",
    "eval.grid_points=20",
    "eval.num_samples=200",
]
TINY_NSF = [o for o in TINY if not o.startswith("model.conditional")]


#: where tests marked ``cuda`` run: a GPU, or the CPU for scripts/gpu_check.sh --cpu-dry-run
TEST_DEVICE = os.environ.get("FUNNELRUN_TEST_DEVICE", "cuda")


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``cuda`` are skipped, with the reason, where no GPU is (``make test`` stays CPU-only)."""
    if TEST_DEVICE != "cuda" or torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here): scripts/gpu_check.sh runs these on a lent GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device() -> torch.device:
    """The device of the ``cuda`` tests (``FUNNELRUN_TEST_DEVICE``, default cuda)."""
    return torch.device(TEST_DEVICE)


class CLIResult:
    def __init__(self, code: int, out: str, err: str, run_dir: Path):
        self.code, self.out, self.err, self.run_dir = code, out, err, run_dir

    @property
    def metrics(self) -> dict:
        return json.loads((self.run_dir / "metrics.json").read_text())


@pytest.fixture
def one_thread():
    """Run on one torch thread: small models run several times faster so on a busy shared machine
    (about 10x measured on 2 cores). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_in_process(run_dir: Path, overrides: list[str]) -> Path:
    """Train ``funnelrun hydra.run.dir=<run_dir> <overrides>`` in this process, for module-scoped
    fixtures (which cannot take ``monkeypatch``); returns ``run_dir``."""
    from funnelrun.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["funnelrun", f"hydra.run.dir={run_dir}", *overrides])
        mp.setenv("WANDB_MODE", "offline")
        GlobalHydra.instance().clear()
        try:
            main()
        finally:
            GlobalHydra.instance().clear()
    return run_dir


@pytest.fixture
def run_cli(capsys, monkeypatch) -> Callable[..., CLIResult]:
    """``run_cli(run_dir, *overrides)``: run ``funnelrun`` in this process, return exit code and output."""
    from funnelrun.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")

    def run(run_dir: Path, *overrides: str) -> CLIResult:
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "argv", ["funnelrun", f"hydra.run.dir={run_dir}", *overrides])
        code = 0
        threads = torch.get_num_threads()
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            torch.set_num_threads(threads)
            GlobalHydra.instance().clear()
        captured = capsys.readouterr()
        return CLIResult(code, captured.out, captured.err, run_dir)

    return run
