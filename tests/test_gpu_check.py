"""scripts/gpu_check.sh: every step's outcome and output are kept whatever the others do, time limits
hold, the whole check runs on the CPU as a dry run, and without a GPU (and no dry run) it stops saying so."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def _check(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args, str(out)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def _steps(out: Path) -> dict[str, str]:
    return json.loads((out / "summary.json").read_text())["steps"]


def test_a_failing_step_a_hung_step_and_a_spent_budget_are_each_recorded(tmp_path: Path) -> None:
    """A Python that fails the tests and hangs in the throughput benchmark (the real one otherwise):
    the check goes on, keeps both outputs, stops the hung step at the budget, skips what does not fit."""
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
case "$*" in
  *"-m pytest"*) echo "tests: partial output"; exit 3 ;;
  *bench_throughput.py*) echo "throughput: started"; sleep 300 ;;
esac
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    out = tmp_path / "out"
    result = _check(out, "--cpu-dry-run", "--only", "throughput,cuda_tests,bench_data", PYTHON=str(fake),
                    GPU_CHECK_BUDGET_S="12")
    assert result.returncode == 1, result.stderr
    steps = _steps(out)
    assert steps["cuda_tests"] == "failed (exit 3)"
    assert steps["throughput"].startswith("timed out after")
    assert steps["bench_data"] == "skipped: the 12 s budget is spent"
    assert steps["env"] == steps["train_mnist"] == "not selected"
    assert (out / "cuda_tests.log").read_text() == "tests: partial output\n"
    assert (out / "throughput.log").read_text() == "throughput: started\n"
    summary = (out / "summary.md").read_text()
    assert "| cuda_tests | failed (exit 3) |" in summary and "| throughput | timed out after" in summary


def test_without_a_gpu_it_stops_and_says_so(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    result = _check(tmp_path / "out", "--only", "none")
    assert result.returncode == 2 and "torch sees no CUDA device" in result.stderr and "--cpu-dry-run" in result.stderr


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    result = _check(tmp_path / "out", "--gpus=2")
    assert result.returncode == 2 and "unknown option --gpus=2" in result.stderr


@pytest.mark.slow
def test_the_cpu_dry_run_runs_every_step(tmp_path: Path) -> None:
    """The same steps as on a GPU, tiny, on the CPU: all pass and the summary holds their figures."""
    out = tmp_path / "out"
    result = _check(out, "--cpu-dry-run")
    assert result.returncode == 0, (result.stderr, (out / "summary.md").read_text())
    assert set(_steps(out).values()) == {"passed"}, _steps(out)
    summary = json.loads((out / "summary.json").read_text())
    assert "passed" in summary["cuda_tests"] and "failed" not in summary["cuda_tests"]
    mnist = summary["train_mnist"]
    assert mnist["steps"] == 4 and mnist["exact"] is True and len(mnist["val_bpd_curve"]) == 2
    assert 0 < mnist["test_bpd"] < 20 and mnist["steps_per_s_incl_validation"] > 0
    assert {row["set"] for row in summary["bench_data"]["throughput"]} == {"cifar10"}
    assert [row["ranks"] for row in summary["bench_data"]["memory"]] == [1, 2]
    assert summary["bench_data"]["celeba"]["jpegs"] == 50  # 40 training, 5 validation, 5 test images
    text = (out / "summary.md").read_text()
    assert "## bench_throughput.py" in text and "cifar10_5bit multi-scale NSF" in text
