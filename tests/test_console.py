"""funnelrun/console.py: the copy of a run's console output in its log, and progress reports."""
from __future__ import annotations

import doctest
import io
import sys

import funnelrun.console
from funnelrun.console import Progress, console_log, lines_printed, log_only, terminal


def test_docstring_examples_run():
    result = doctest.testmod(funnelrun.console, verbose=False)
    assert result.attempted >= 1 and result.failed == 0


def test_everything_printed_is_also_in_the_log(tmp_path, capsys):
    log = tmp_path / "run" / "funnelrun.log"
    with console_log(log):
        print("to stdout")
        print("to stderr", file=sys.stderr)
        log_only("only in the log")
        assert terminal() is not sys.stderr  # a bar draws under the copy, on the console alone
    print("after the run")
    captured = capsys.readouterr()
    assert captured.out == "to stdout\nafter the run\n" and captured.err == "to stderr\n"
    assert log.read_text() == "to stdout\nto stderr\nonly in the log\n"


def test_a_log_is_appended_to_never_rewritten(tmp_path):
    log = tmp_path / "funnelrun.log"
    for text in ("first", "second"):
        with console_log(log):
            print(text)
    assert log.read_text() == "first\nsecond\n"


def test_progress_without_a_terminal_prints_lines_with_rate_and_eta(capsys):
    with Progress("scoring", total=4, every_s=0.0, bar=False) as progress:
        for _ in range(4):
            progress.update()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scoring: 1/4 batches (25%), ") and "batches/s" in lines[0] and "ETA" in lines[0]
    assert lines[3].startswith("scoring: 4/4 batches (100%)")
    assert lines[-1].startswith("scoring: 4 batches in ")


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_on_a_terminal_draws_a_bar_and_logs_its_lines(tmp_path, monkeypatch, capsys):
    screen = _Stream(tty=True)  # stdout and stderr both on it
    with console_log(tmp_path / "funnelrun.log"):
        monkeypatch.setattr("funnelrun.console.terminal", lambda stream=None: screen)
        with Progress("OOD", total=2, every_s=0.0, bar=True) as progress:
            progress.update(2)
    assert "OOD" in screen.getvalue() and "2/2" in screen.getvalue()
    assert capsys.readouterr().out == ""  # the lines are not printed beside the bar
    assert "OOD: 2/2 batches (100%)" in (tmp_path / "funnelrun.log").read_text()


def test_lines_are_printed_unless_a_bar_shares_the_terminal_with_stdout(monkeypatch):
    monkeypatch.setattr(sys, "stdout", _Stream(tty=True))
    assert lines_printed(bar=False) and not lines_printed(bar=True)  # both on the screen: the bar only
    monkeypatch.setattr(sys, "stdout", _Stream(tty=False))
    assert lines_printed(bar=True)  # funnelrun > log: the bar on the screen, the lines in the file
