"""The benchmark scripts whose figures the README and the issue notes quote still run as documented."""
from __future__ import annotations

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
