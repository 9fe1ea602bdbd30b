"""A non-editable wheel ships the YAML configs: `funnelrun` works from any directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_configs_and_runs_from_another_directory(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(ROOT)], check=True)
    (wheel,) = wheel_dir.glob("funnelrun-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", "import funnelrun.cli as c, sys; print(c.__file__); sys.argv=['funnelrun','--help']; c.main()"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert str(site) in out.splitlines()[0]  # the installed copy, not the checkout
    assert (site / "funnelrun" / "evaluation" / "paper_results.yaml").is_file()  # funnelrun-report --paper
    model_line = next(line for line in out.splitlines() if line.startswith("  model "))
    assert {"f_nsf", "nsf"} <= set(model_line.removeprefix("  model ").strip().split(", "))
    assert "hydra/launcher  local, slurm" in out  # the launcher options shipped in conf/hydra/launcher/
    assert "four_circles" in out
