"""The benchmark scripts whose figures the README and the issue notes quote still run as documented."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_funnel_overhead_times_the_shipped_table1_recipes():
    out = subprocess.run(
        [sys.executable, "scripts/funnel_overhead.py", "--recipes", "table1", "--sizes", "miniboone",
         "--kinds", "coupling", "--rounds", "1", "--seconds", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    # the Table 1 MINIBOONE pair as funnelrun builds it: NSF 129,542 and F-NSF 127,002 parameters
    assert "129,542 params" in out.stdout and "127,002 params" in out.stdout
    assert "F-NSF/NSF eager:" in out.stdout


def test_funnel_overhead_help():
    out = subprocess.run([sys.executable, "scripts/funnel_overhead.py", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--recipes" in out.stdout


def test_time_to_quality_rows_run_with_a_cosine_schedule_and_bf16():
    out = subprocess.run(
        [sys.executable, "scripts/bench_throughput.py", "--threads", "1", "--skip-throughput",
         "--time-to-quality", "--precision", "bf16-mixed", "--ttq-steps", "4", "--ttq-chunk", "2",
         "--ttq-schedule", "cosine"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "| funnelrun NSF |" in out.stdout and "| funnelrun NSF bf16 |" in out.stdout
    assert "cosine-annealed to 0" in out.stdout and re.search(r"learning rate at the end 0$", out.stdout, re.M)
    assert "final validation NLL, bf16-mixed minus fp32:" in out.stdout
