"""``funnelrun-report``: groups runs that differ only in seed; mean ± 2 sd; Markdown, LaTeX, CSV."""
from __future__ import annotations

import csv
import json
import math
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
    with pytest.raises(SystemExit, match="no runs"):
        main([str(tmp_path)])


def test_failed_and_nan_runs_are_listed_as_such_and_never_averaged(tmp_path, capsys):
    for seed, nll in enumerate([2.90, 2.94]):
        _fake_run(tmp_path, "f_nsf-four_circles", seed, nll)
    _fake_run(tmp_path, "f_nsf-four_circles", 2, float("nan"))  # a diverged seed
    unfinished = tmp_path / "f_nsf-four_circles-1-3"  # a config and no metrics.json
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((tmp_path / "f_nsf-four_circles-1-0" / "config.yaml").read_text()
                                            .replace("seed: 0", "seed: 3"))
    _fake_run(tmp_path, "nsf-four_circles", 0, float("nan"))  # every seed failed
    marked = tmp_path / "job7"  # a sweep job that failed before writing its config
    marked.mkdir()
    (marked / "failure.json").write_text(json.dumps({"error": "funnelrun: error: data.bits=9 must be between 1 and 8"}))
    _fake_run(tmp_path, "vae-four_circles", 0, 3.5, exact=False)  # a single seed
    wandb_files = tmp_path / "f_nsf-four_circles-1-0" / "wandb" / "offline-run-x" / "files"
    wandb_files.mkdir(parents=True)
    (wandb_files / "config.yaml").write_text("model: {value: 1}\ndata: {value: 2}\n")  # W&B's own, not a run
    history = tmp_path / "f_nsf-four_circles-1-0" / "history" / "step6"  # an extended run's earlier result
    history.mkdir(parents=True)
    for f in ("config.yaml", "metrics.json"):
        (history / f).write_text((tmp_path / "f_nsf-four_circles-1-0" / f).read_text())
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "nan ±" not in out.lower() and "| nan" not in out.lower()
    spread = 2 * statistics.stdev([-2.90, -2.94])
    assert f"| -2.920 ± {spread:.3f} |" in out and "| 0,1 (failed: 2,3) |" in out  # NaN and unfinished seeds
    assert "| nsf-four_circles | four_circles | failed |" in out
    assert "| -3.500 (1 seed) |" in out and "-3.500 ±" not in out
    assert "failed runs (4):" in out and "no metrics.json" in out and "test/nll is not finite" in out
    assert "job7: (no config.yaml): failed (failure.json: funnelrun: error: data.bits=9" in out
    assert "offline-run" not in out and "3 finished runs, 4 failed" in out


def _paper_run(root: Path, name: str, seed: int, metrics: dict, evals: tuple = ()) -> Path:
    run = root / f"{name.replace('/', '-')}-{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": name, "seed": seed, "data": {"name": "x"},
                                                     "model": {"_target_": "x"}}))
    base = {"test/nll": None, "test/bpd": None, "test/nll_elbo": None, "exact": True, "latent_dim": 4,
            "num_params": 1, "data_dim": 784, "is_samples": None}
    (run / "metrics.json").write_text(json.dumps({**base, **metrics}))
    for i, record in enumerate(evals):
        path = run / "eval" / f"2026-01-0{i + 1}_00-00-00" / "000000001"
        path.mkdir(parents=True)
        (path / "eval_metrics.json").write_text(json.dumps(record))
    return run


def test_paper_puts_each_measured_row_beside_the_published_number(tmp_path, capsys):
    """Table 1, NSF POWER: 0.63 ± 0.01 (nats); Table 2 VAE CIFAR-10 5-bit: 4.09 BPD (an ELBO);
    Table 4 F-NSF LS 16: 1.28 / 11.32 / 8.84 (MNIST BPD, F-MNIST BPD, ratio)."""
    for seed, nll in enumerate([-0.625, -0.631]):
        _paper_run(tmp_path, "table1/power_nsf", seed, {"test/nll": nll})
    _paper_run(tmp_path, "table1/power_f_nsf", 0, {"test/nll": -0.50})
    nll_elbo = 4.19 * 3072 * math.log(2)
    _paper_run(tmp_path, "table2/cifar10_5bit_vae", 0,
               {"test/nll": nll_elbo - 1, "test/bpd": 4.1, "test/nll_elbo": nll_elbo, "data_dim": 3072, "exact": False})
    old = {"ood_data": "fashion_mnist", "test/bpd": 9.0, "ood/bpd": 9.0, "ood/ratio": 1.0}
    new = {"ood_data": "fashion_mnist", "test/bpd": 2.80, "ood/bpd": 13.70, "ood/ratio": 13.70 / 2.80}
    other = {"ood_data": "mnist", "test/bpd": 5.0, "ood/bpd": 5.0, "ood/ratio": 1.0}
    _paper_run(tmp_path, "table4/mnist_f_nsf_16", 0, {"test/nll": 1.0, "test/bpd": 2.81}, evals=(old, new, other))
    _paper_run(tmp_path, "table4/mnist_f_mlp_16", 0, {"test/nll": 1.0, "test/bpd": float("nan")})
    _fake_run(tmp_path, "f_nsf-four_circles", 0, 2.9)  # not a paper row: left out
    main([str(tmp_path), "--paper"])
    out = capsys.readouterr().out
    spread = 2 * statistics.stdev([0.625, 0.631])
    assert f"| 1 | NSF | POWER | test/loglik | 0.628 ± {spread:.3f} | 0,1 | 0.63 ± 0.01 | -0.002 | yes |" in out
    assert "| 1 | F-NSF | POWER | test/loglik | 0.500 (1 seed) | 0 | 0.62 ± 0.02 | -0.120 | no |" in out
    assert "| 2 | VAE | CIFAR-10 5-BIT | test/bpd_elbo | 4.190 (1 seed) | 0 | 4.09 | +0.100 | no error bar |" in out
    assert "| 4 | F-NSF (LS 16) | MNIST | test/bpd | 2.800 (1 seed) | 0 | 1.28 | +1.520 | no error bar |" in out
    assert "| F-MNIST | ood/bpd | 13.700 (1 seed) | 0 | 11.32 | +2.380 |" in out  # the newest F-MNIST eval
    assert "| RATIO | ood/ratio | 4.893 (1 seed) | 0 | 8.84 | -3.947 |" in out
    assert "| 4 | F-MLP (LS 16) | MNIST | test/bpd | failed | (failed: 1) |" in out and "four_circles" not in out.split("failed runs")[0]
    assert "of the paper's cells measured" in out
    with open(tmp_path / "paper_report.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["table", "row", "column", "metric"] and len(rows) == 1 + 2 + 1 + 3 + 3


def test_paper_entries_name_existing_experiments():
    """Every published number in the package's data file is a cell of Tables 1, 2, 4 with a value,
    and its experiment= file exists."""
    import funnelrun.conf
    from funnelrun.evaluation.report import paper_entries

    entries = paper_entries()
    funnels = [e for e in entries if "paper" not in e]
    assert [sum(e["table"] == t for e in funnels) for t in (1, 2, 4)] == [6 * 5, 4 * 4, 7 * 3]
    root = Path(funnelrun.conf.__file__).parent / "experiment"
    for e in entries:
        assert (root / f"{e['experiment']}.yaml").is_file() and isinstance(e["value"], float)
    for e in funnels:
        assert (e["error"] is not None) == (e["table"] == 1)
    # VFlow §5 (nats, with its spread) and Das et al.'s Table 1 (BPD, 2 RealNVP rows x 4 sets, no error bars)
    others = {(e["paper"], e["row"]): (e["value"], e["error"]) for e in entries if "paper" in e and e["table"] != "DRF 1"}
    assert others == {("vflow", "Glow 3-step"): (-3.67, 0.03), ("vflow", "VFlow 3-step D=10"): (-3.51, 0.01)}
    drf = [e for e in entries if e.get("paper") == "drf"]
    assert len(drf) == 8 and all(e["error"] is None and e["metric"] == "test/bpd" for e in drf)
    nsf_power = next(e for e in entries if e["experiment"] == "table1/power_nsf")
    assert (nsf_power["value"], nsf_power["error"]) == (0.63, 0.01)


def test_paper_without_a_paper_run_is_a_clear_error(tmp_path):
    _fake_run(tmp_path, "f_nsf-four_circles", 0, 2.9)
    with pytest.raises(SystemExit, match="none of|no run under these directories is one of the paper's rows"):
        main([str(tmp_path), "--paper"])


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
