"""``funnelrun-report``: groups runs that differ only in seed; mean ± 2 sd; Markdown, LaTeX, CSV."""
from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from funnelrun.cli import report_main as main

from conftest import TINY_NSF


def _fake_run(root: Path, name: str, seed: int, nll: float, latent_dim: int = 1, exact: bool = True) -> None:
    run = root / f"{name}-{latent_dim}-{seed}"
    run.mkdir(parents=True)
    config = {"name": name, "seed": seed, "data": {"name": "four_circles"},
              "model": {"_target_": "x", "latent_dim": latent_dim}, "logger": {"_target_": f"log{seed}"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"test/nll": nll, "test/bpd": None, "exact": exact, "latent_dim": latent_dim, "num_params": 1234,
               "is_samples": None if exact else 1000}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_groups_seeds_and_reports_mean_and_two_sd(tmp_path, capsys):
    for seed, nll in enumerate([2.90, 2.92, 2.94]):
        _fake_run(tmp_path, "f_nsf-four_circles", seed, nll)
    for seed, nll in enumerate([3.1, 3.3]):
        _fake_run(tmp_path, "f_nsf-four_circles", seed, nll, latent_dim=2)
    _fake_run(tmp_path, "vae-four_circles", 0, 3.5, exact=False)
    main([str(tmp_path)])
    out = capsys.readouterr().out
    spread = 2 * statistics.stdev([-2.90, -2.92, -2.94])
    assert f"-2.920 ± {spread:.3f}" in out
    assert "f_nsf-four_circles (model.latent_dim=2)" in out and "f_nsf-four_circles (model.latent_dim=1)" in out
    assert "IS estimate of a bound (S=1000)" in out and r"\begin{tabular}" in out
    with open(tmp_path / "report.csv") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 3
    assert {r[-1] for r in rows[1:]} == {"0,1,2", "0,1", "0"}


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no finished runs"):
        main([str(tmp_path)])


def test_a_two_job_multirun_is_tabled(tmp_path):
    exe = Path(sys.executable).with_name("funnelrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"
    proc = subprocess.run([str(exe), "-m", "model=nsf", *TINY_NSF, "eval.plot=false", "seed=0,1",
                           f"hydra.sweep.dir={sweep}"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = subprocess.run([str(exe.with_name("funnelrun-report")), str(sweep)], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert "| nsf-four_circles | four_circles |" in report.stdout and "| 0,1 |" in report.stdout
    assert (sweep / "report.csv").is_file()
