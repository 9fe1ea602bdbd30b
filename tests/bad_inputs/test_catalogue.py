"""The catalogue of bad inputs (:mod:`bad_input_cases`), run through the CLI: each exits non-zero with
a message that names the problem (or, where the command may run, says what is wrong), never with a
traceback, and leaves an earlier finished run's files byte-for-byte untouched.

Every case shares one finished tiny run (made once per module), copied for each case; the tools run
in this process. ``scripts/bad_input_catalogue.py`` runs the same cases and counts the outcomes.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from bad_input_cases import CASES, Case, check_case, copy_run, make_earlier_run, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """One finished tiny F-NSF run (made once, copied per test)."""
    return make_earlier_run(tmp_path_factory.mktemp("earlier") / "run")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, earlier_run: Path, tmp_path: Path, monkeypatch) -> None:
    pristine = snapshot(earlier_run)
    earlier = copy_run(earlier_run, tmp_path / "earlier")
    work = tmp_path / "work"
    work.mkdir()
    verdict = check_case(case, earlier, work, monkeypatch)
    assert not verdict.outcome.traceback, verdict.why()
    assert verdict.clear, verdict.why()
    assert not verdict.changed, f"an earlier output was changed: {verdict.why()}"
    assert snapshot(earlier_run) == pristine


def test_untouched_check_can_fail(earlier_run: Path, tmp_path: Path, monkeypatch) -> None:
    """The catalogue's check sees a changed file (so a case that rewrote one would fail)."""
    earlier = copy_run(earlier_run, tmp_path / "earlier")

    case = Case("rewrites metrics", ["{earlier}"], [], tool="funnelrun-report", expect="notice")
    verdict = check_case(case, earlier, tmp_path, monkeypatch)
    assert "report.csv (new)" in verdict.changed
