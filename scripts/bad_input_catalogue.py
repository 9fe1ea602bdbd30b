"""The bad-input catalogue as a figure: every case of ``tests/bad_inputs/bad_input_cases.py`` run
through the CLI (in this process, as tests/bad_inputs/test_catalogue.py does) beside one finished
tiny run, counting the outcomes.

    .venv/bin/python scripts/bad_input_catalogue.py [-k SUBSTRING] [-v]

Prints one line per case that is not clear, then: cases tried, clear outcomes (errors: non-zero
exit, the message names the problem, no traceback; warnings: the run goes on and says what is
wrong), tracebacks (goal 0), runs whose files changed (goal 0), and the wall time. Exit status 1
when a case was not clear, printed a traceback or changed the earlier run's files.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "bad_inputs")]

import pytest  # noqa: E402
import torch  # noqa: E402
from bad_input_cases import CASES, check_case, copy_run, make_earlier_run, snapshot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="only the cases whose id contains this")
    parser.add_argument("-v", action="store_true", help="print every case's verdict and the failures' output")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    cases = [c for c in CASES if args.k in c.id]
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        earlier_run = make_earlier_run(root / "earlier")
        pristine = snapshot(earlier_run)
        for index, case in enumerate(cases):
            case_dir = root / f"case{index}"
            earlier = copy_run(earlier_run, case_dir / "earlier")
            (case_dir / "work").mkdir()
            with pytest.MonkeyPatch.context() as monkeypatch:
                verdict = check_case(case, earlier, case_dir / "work", monkeypatch)
            counts["tried"] += 1
            counts[f"{case.expect}s"] += 1
            counts["clear"] += verdict.clear
            counts["tracebacks"] += verdict.outcome.traceback
            counts["changed"] += bool(verdict.changed)
            if not verdict.clear or verdict.changed or args.v:
                mark = "ok  " if verdict.clear and not verdict.changed else "FAIL"
                print(f"{mark} [{case.tool}] {case.id}: exit {verdict.outcome.code}"
                      f"{', traceback' if verdict.outcome.traceback else ''}"
                      f"{', changed ' + ', '.join(verdict.changed) if verdict.changed else ''}", flush=True)
                if args.v and mark == "FAIL":
                    print(verdict.why(), flush=True)
        counts["changed"] += snapshot(earlier_run) != pristine
    seconds = time.perf_counter() - start
    print(f"\ncases tried: {counts['tried']} ({counts['errors']} errors expected, {counts['warnings']} warnings, "
          f"{counts['notices']} notices)")
    print(f"clear outcomes: {counts['clear']} of {counts['tried']}")
    print(f"tracebacks: {counts['tracebacks']} (goal 0)")
    print(f"runs whose files changed: {counts['changed']} (goal 0)")
    print(f"wall time: {seconds:.1f} s")
    return 0 if counts["clear"] == counts["tried"] and not counts["tracebacks"] and not counts["changed"] else 1


if __name__ == "__main__":
    sys.exit(main())
