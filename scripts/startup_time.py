"""Start-up time of the command line: the wall time of whole processes that answer without training
(``funnelrun --help``, ``funnelrun --cfg job``, a config error, ``funnelrun-sample --help``), measured
from outside the process, beside the import time of torch and Lightning alone; and, for each, whether
the process imported torch or Lightning at all (it should not).

    .venv/bin/python scripts/startup_time.py [--repeats 5]

Prints per command the median and range of the wall times (seconds) and the heavy modules it
imported. The entry points are run as ``python -c`` calls of their ``funnelrun.cli`` functions, with
the console scripts' arguments, so that the check of ``sys.modules`` happens in the same process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

#: (label, entry point in funnelrun.cli, arguments, expected exit status)
COMMANDS = [
    ("funnelrun --help", "main", ["--help"], 0),
    ("funnelrun --cfg job", "main", ["--cfg", "job"], 0),
    ("funnelrun --cfg job model=nsf data=cifar10_5bit", "main", ["--cfg", "job", "model=nsf", "data=cifar10_5bit"], 0),
    ("funnelrun trainer.max_step=10 (config error)", "main", ["trainer.max_step=10"], 2),
    ("funnelrun model=fnsf (config error)", "main", ["model=fnsf"], 2),
    ("funnelrun trainer.max_steps=abc (config error)", "main", ["trainer.max_steps=abc"], 2),
    ("funnelrun-sample --help", "sample_main", ["--help"], 0),
    ("funnelrun-eval --help", "eval_main", ["--help"], 0),
    ("funnelrun-check --help", "check_main", ["--help"], 0),
]
HEAVY = ("torch", "lightning", "wandb", "matplotlib")

_PROBE = """
import atexit, sys
def _report():
    heavy = [m for m in {heavy!r} if m in sys.modules]
    sys.__stderr__.write("\\nHEAVY=" + ",".join(heavy) + "\\n")
atexit.register(_report)
sys.argv = ["funnelrun", *{args!r}]
from funnelrun import cli
cli.{entry}()
"""


def _run(code: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HYDRA_FULL_ERROR": ""})
    return time.perf_counter() - start, proc.returncode, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':<52} {'median s':>8} {'min':>6} {'max':>6}  imported")
    for label, entry, argv, expected in COMMANDS:
        walls, heavy = [], ""
        for _ in range(args.repeats):
            wall, code, err = _run(_PROBE.format(heavy=HEAVY, args=argv, entry=entry))
            if code != expected:
                sys.exit(f"{label}: exit status {code}, expected {expected}\n{err[-2000:]}")
            walls.append(wall)
            heavy = err.rsplit("HEAVY=", 1)[-1].strip() if "HEAVY=" in err else "?"
        print(f"{label:<52} {statistics.median(walls):8.2f} {min(walls):6.2f} {max(walls):6.2f}  {heavy or 'none of ' + '/'.join(HEAVY)}")
    for module in ("torch", "lightning.pytorch"):
        walls = [_run(f"import {module}")[0] for _ in range(args.repeats)]
        print(f"{'python -c import ' + module:<52} {statistics.median(walls):8.2f} {min(walls):6.2f} {max(walls):6.2f}")


if __name__ == "__main__":
    main()
