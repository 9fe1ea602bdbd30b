"""Training progress (funnelrun/training/progress.py): lines every ``log_every_s`` where there is no
terminal, Lightning's bar over ``trainer.max_steps`` on one, and both kept in ``<run>/funnelrun.log``;
none of Lightning's own chatter."""
from __future__ import annotations

import re

import pytest

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

STEP_LINE = re.compile(r"^step (\d+)/6 \(\d+%\) \| loss -?\d+\.\d{4}( \| val NLL -?\d+\.\d{4})? \| [\d.]+ steps/s \| ETA \S+$")
NOISE = ("GPU available", "TPU available", "Tip:", "FLOPs", "LeafSpec", "Restoring states", "Loaded model weights",
         "`Trainer.fit` stopped", "v_num", "Epoch 0")


def test_without_a_terminal_a_line_every_log_every_s_and_the_log_holds_all(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY, "log_every_s=0.000001")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("training f_nsf-four_circles: ") and "6 steps" in lines[0]
    steps = [int(m.group(1)) for m in map(STEP_LINE.match, lines) if m]
    assert steps == list(range(1, 7))  # a line every step here
    assert any(line.startswith("trained to step 6 in ") and "val NLL" in line for line in lines)
    assert any(line.startswith("test: 3 batches") for line in lines)  # 300 examples, batches of 128
    log = (tmp_path / "run" / "funnelrun.log").read_text()
    assert log == result.out + result.err  # everything printed, nothing else
    for noise in NOISE:
        assert noise not in result.out and noise not in result.err


def test_a_bar_over_max_steps_on_stderr_and_the_lines_on_redirected_stdout(run_cli, tmp_path):
    """``funnelrun > log`` on a terminal: the bar on the screen (stderr), the lines in the file (stdout,
    here captured: no terminal) and in the run's log; the bar's redraws in neither file."""
    result = run_cli(tmp_path / "run", *TINY, "trainer.enable_progress_bar=true", "log_every_s=0.000001")
    assert result.code == 0, result.err
    bar = result.err
    assert re.search(r"train: 100%\|.*\| 6/6 \[.*steps/s", bar), bar[-1500:]
    assert "loss=" in bar and "val NLL=" in bar
    for noise in NOISE:
        assert noise not in bar
    assert sum(bool(STEP_LINE.match(line)) for line in result.out.splitlines()) == 6
    assert "train: " not in result.out
    log = (tmp_path / "run" / "funnelrun.log").read_text()
    assert sum(bool(STEP_LINE.match(line)) for line in log.splitlines()) == 6
    assert "train: " not in log  # the bar's redraws stay on the terminal
