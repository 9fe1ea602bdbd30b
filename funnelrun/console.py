"""What a run shows the user: everything it prints is also kept in ``<run>/funnelrun.log``, and long
loops report their progress, as a bar on a terminal and as one line every ``every_s`` seconds
elsewhere (a SLURM log, ``make run > log``), so a log always shows a live job.

    with console_log(run_dir / "funnelrun.log"):
        print("kept in the log too")
        with Progress("OOD scoring", total=len(loader)) as progress:
            for batch in loader:
                ...
                progress.update()
"""
from __future__ import annotations

import io
import logging
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional

#: seconds between two progress lines where there is no terminal (``log_every_s``)
DEFAULT_EVERY_S = 30.0


class _Tee(io.TextIOBase):
    """A text stream that writes to ``stream`` and appends the same text to the log file ``log``."""

    def __init__(self, stream: IO[str], log: IO[str]):
        super().__init__()
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(text)
        if not self.log.closed:  # a handler that kept this stream past its run writes to the console only
            self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        if not self.log.closed:
            self.log.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _under(stream: IO[str]) -> IO[str]:
    while isinstance(stream, _Tee):
        stream = stream.stream
    return stream


def terminal(stream: Optional[IO[str]] = None) -> IO[str]:
    """``stream`` (default: stderr) without the copy into the log: where a progress bar draws."""
    return _under(sys.stderr if stream is None else stream)


def on_terminal(stream: Optional[IO[str]] = None) -> bool:
    """Whether ``stream`` (default: stderr, where bars draw) is an interactive terminal."""
    try:
        return terminal(stream).isatty()
    except (AttributeError, ValueError):
        return False


def lines_printed(bar: bool) -> bool:
    """Whether progress lines are printed (else only written to the run's log): always without a bar,
    and beside one when stdout is not a terminal (``funnelrun > log`` with the bar on the screen)."""
    return not bar or not on_terminal(sys.stdout)


def log_only(line: str) -> None:
    """Append ``line`` to the run's log without showing it (the line form of a bar on the terminal)."""
    stream = sys.stdout
    if isinstance(stream, _Tee) and not stream.log.closed:
        stream.log.write(line + "\n")
        stream.log.flush()


@contextmanager
def console_log(path: Path) -> Iterator[Path]:
    """While the block runs, everything written to stdout and stderr is also appended to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out, err = sys.stdout, sys.stderr
    with open(path, "a", encoding="utf-8", buffering=1) as log:
        sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
        try:
            yield path
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            sys.stdout, sys.stderr = out, err


def duration(seconds: float) -> str:
    """A short human duration: ``42s``, ``3m05s``, ``1h02m``; ``?`` when unknown.

        >>> duration(185.2), duration(3725), duration(float("inf"))
        ('3m05s', '1h02m', '?')
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def rate_and_eta(done: float, total: Optional[float], elapsed: float) -> tuple[float, float]:
    """(items per second, seconds left) after ``done`` of ``total`` items in ``elapsed`` seconds."""
    rate = done / elapsed if elapsed > 0 else 0.0
    left = (total - done) / rate if total is not None and rate > 0 else math.inf
    return rate, left


class Progress:
    """Progress of a loop over ``total`` items (``unit``): a tqdm bar on a terminal, and a line every
    ``every_s`` seconds and one at the end, printed where there is no bar or stdout is not a terminal,
    else written to the run's log only.

    ``update(n)`` counts ``n`` more items done."""

    def __init__(self, label: str, total: Optional[int], every_s: float = DEFAULT_EVERY_S, unit: str = "batches",
                 bar: Optional[bool] = None):
        self.label, self.total, self.every_s, self.unit = label, total, every_s, unit
        self.done = 0
        self.start = self.last = time.monotonic()
        self._bar = None
        if on_terminal() if bar is None else bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=f" {unit}", file=terminal(), dynamic_ncols=True, leave=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate, left = rate_and_eta(self.done, self.total, elapsed)
        of = f"/{self.total}" if self.total is not None else ""
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return (f"{self.label}: {self.done}{of} {self.unit}{percent}, {rate:.2f} {self.unit}/s, "
                f"elapsed {duration(elapsed)}, ETA {duration(left)}")

    def _emit(self, text: str) -> None:
        if lines_printed(self._bar is not None):
            print(text, flush=True)
        else:
            log_only(text)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._emit(self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._emit(f"{self.label}: {self.done} {self.unit} in {duration(time.monotonic() - self.start)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CurrentStderr(logging.Handler):
    """A logging handler that writes to whatever ``sys.stderr`` is when a record arrives, so the
    warnings of any library also land in the run's log (``conf/hydra/job_logging/funnelrun.yaml``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 -- logging must never raise
            self.handleError(record)
