"""Console entry points: ``funnelrun`` (train and test), ``funnelrun-sample``, ``funnelrun-eval``,
``funnelrun-check`` and ``funnelrun-report``.

Each turns a user-facing problem (:class:`~funnelrun.errors.FunnelrunError`) into ``<tool>: error:
<message>`` and exit status 2, and has its own ``--help`` (:mod:`funnelrun.usage`). ``funnelrun``
composes and checks the overrides before Hydra starts the job (:func:`funnelrun.config.check_overrides`),
so a config error makes no output directory and imports neither torch nor Lightning; ``--help`` and
``--cfg job`` answer the same way. A run stopped by a signal after saving its checkpoint prints the
command that resumes it and exits 130 (Ctrl-C) or 143 (SIGTERM, SIGUSR1, SIGUSR2)."""
from __future__ import annotations

import errno
import math
import os
import re
import shlex
import shutil
import sys
import time
import traceback
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Union

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from funnelrun.config import check_overrides, register_configs
from funnelrun.console import console_log
from funnelrun.errors import FunnelrunError, RunInterrupted
from funnelrun.run_files import FAILURE_FILE, write_json_atomic
from funnelrun.run_lock import run_lock
from funnelrun.validation import check_devices

register_configs()

#: disk full, quota exceeded, read-only file system, permission denied
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
#: the run's console output, kept in its directory
LOG_FILE = "funnelrun.log"


class _Failed(SystemExit):
    """``sys.exit(2)`` after ``<tool>: error: <message>``, carrying the message (a sweep job records it)."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message


def _fail(exc: BaseException, tool: str = "funnelrun") -> NoReturn:
    message = str(exc)
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        message = str(exc.__cause__)
    print(f"{tool}: error: {message}", file=sys.stderr, flush=True)
    raise _Failed(message)


def _stopped(stop: RunInterrupted) -> NoReturn:
    """A signal stopped the run after saving its state: say so (not an error) and how to resume."""
    try:
        task = list(HydraConfig.get().overrides.task)
    except ValueError:  # no Hydra job (called from Python)
        task = []
    kept = [o for o in task if not o.lstrip("+").startswith(("hydra.run.dir=", "ckpt_path="))]
    command = shlex.join(["funnelrun", *kept, f"hydra.run.dir={stop.resume_dir}", "ckpt_path=last"])
    print(f"funnelrun: {stop}\nresume with: {command}", file=sys.stderr, flush=True)
    sys.exit(stop.exit_code)


def _storage_error(exc: OSError, fix: str) -> FunnelrunError:
    return FunnelrunError(f"could not write {exc.filename or 'the outputs'}: {exc.strerror or exc}. {fix}")


def check_run_dir(run_dir: Path) -> None:
    """``hydra.run.dir`` must be (or be made inside) a writable directory: not a file, not below a
    file, not on a read-only file system; raise a FunnelrunError before Hydra makes anything."""
    path = run_dir.expanduser().absolute()
    for place in (path, *path.parents):
        if not place.exists():
            continue
        if not place.is_dir():
            where = "is" if place == path else f"is below {place}, which is"
            raise FunnelrunError(f"hydra.run.dir={run_dir} {where} a file, not a directory; choose another "
                                 "hydra.run.dir=<dir>")
        if not os.access(place, os.W_OK):
            raise FunnelrunError(
                f"cannot write to {place} (a read-only file system, or no permission), where hydra.run.dir="
                f"{run_dir} {'is' if place == path else 'would be made'}; choose a writable hydra.run.dir=<dir>"
            )
        return


def _run_dir_override(overrides: list[str]) -> Optional[Path]:
    values = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("hydra.run.dir=")]
    return Path(values[-1]) if values else None


def _holds_only_log(run_dir: Path) -> bool:
    return run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOG_FILE}


def train_job(cfg: DictConfig) -> Union[float, "FailedJob"]:
    """Train and test one model (one Hydra job); returns the best validation NLL, which Hydra sweepers
    (e.g. hydra/sweeper=optuna) minimise: tuning on the test split would leak it into the result.

    Everything printed is also appended to ``<run>/funnelrun.log`` (on rank 0). A problem found
    before anything was written (a config value out of range, an unreachable latent size, no GPU)
    removes the directory Hydra made for this job, which then holds nothing but that log.

    In a sweep (``-m``, ``hparams_search=``) a failing job does not end the sweep: it says why in
    ``<job dir>/failure.json``; the sweep
    goes on, and ends with a non-zero status and the count (:func:`main`). A stop by a signal still
    ends the whole sweep. It returns :class:`FailedJob`, which Optuna records as a failed trial."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return _train_job(cfg, run_dir)
    try:
        return _train_job(cfg, run_dir)
    except _Failed as failed:
        error = failed.message
    except Exception as exc:  # an unexpected error (printed with its traceback): recorded the same way
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    record = {"error": error, "job": HydraConfig.get().job.num, "overrides": list(HydraConfig.get().overrides.task),
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json_atomic(run_dir / FAILURE_FILE, record)
    print(f"funnelrun: job {record['job']} failed ({run_dir / FAILURE_FILE}); the sweep goes on",
          file=sys.stderr, flush=True)
    return FailedJob(f"job {record['job']} failed ({run_dir / FAILURE_FILE}): {error}")


class FailedJob:
    """What a failed sweep job returns: no number. Hydra's Optuna sweeper casts a trial's return value
    to float and, when that fails, tells Optuna the trial failed and goes on (with
    ``max_failure_rate: 1.0``, conf/hparams_search/); a NaN instead would be refused by Optuna in a
    way that stops the search."""

    def __init__(self, message: str):
        self.message = message

    def __float__(self) -> float:
        raise ValueError(self.message)

    def __str__(self) -> str:
        return self.message


def _train_job(cfg: DictConfig, run_dir: Path) -> float:
    from lightning.pytorch.utilities import rank_zero_only

    from funnelrun.pipelines.ldmask import is_ldmask, train_ldmask
    from funnelrun.pipelines.train import summary_lines, train

    rank_zero = rank_zero_only.rank == 0  # type: ignore[attr-defined]  # set on the function by Lightning
    fresh = rank_zero and run_dir.is_dir() and not any(run_dir.iterdir())
    discard = False
    storage_fix = ("Free space or choose a writable hydra.run.dir; files are written atomically, so earlier "
                   "outputs are untouched")
    try:
        with ExitStack() as log:
            try:
                if rank_zero:
                    # one process per run directory (DDP ranks > 0 run inside rank 0's): a second stops here
                    log.enter_context(run_lock(run_dir))
                    log.enter_context(console_log(run_dir / LOG_FILE))
                metrics = (train_ldmask if is_ldmask(cfg) else train)(cfg, run_dir)
            except RunInterrupted as stop:
                _stopped(stop)
            except (FunnelrunError, InstantiationException) as exc:
                discard = fresh
                _fail(exc)
            except KeyboardInterrupt:  # Ctrl-C before training started (or twice): nothing more saved
                print("funnelrun: stopped by Ctrl-C; nothing was saved after the last checkpoint (if any)",
                      file=sys.stderr, flush=True)
                sys.exit(130)
            except OSError as exc:
                if exc.errno not in _STORAGE_ERRNOS:
                    raise
                _fail(_storage_error(exc, storage_fix))
            if rank_zero:
                for line in summary_lines(metrics, run_dir):
                    print(line, flush=True)
    finally:
        if discard and _holds_only_log(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            if re.fullmatch(r"\d{4}-\d\d-\d\d", run_dir.parent.name):  # the default outputs/<date>/<time>
                with suppress(OSError):
                    run_dir.parent.rmdir()  # only if empty: no other run that day
    return metrics["val/nll"] if metrics["val/nll"] is not None else math.inf


_hydra_main = hydra.main(version_base="1.3", config_path="pkg://funnelrun.conf", config_name="config")(train_job)


def main() -> Any:
    """``funnelrun [overrides]``: check the command line (composing the config, without torch), then
    run Hydra's job(s). ``--help`` prints funnelrun's own help (:func:`funnelrun.usage.train_help`)."""
    argv = sys.argv[1:]
    args, _ = get_args_parser().parse_known_args(argv)
    try:
        if args.help:
            from funnelrun.usage import train_help

            print(train_help(args.overrides), flush=True)
            return None
        if not (args.hydra_help or args.info or args.shell_completion):
            cfg = check_overrides(args.overrides, multirun=args.multirun)
            if cfg is not None and not args.cfg:
                check_devices(cfg)
                check_run_dir(_run_dir_override(args.overrides) or Path("outputs"))
    except FunnelrunError as exc:
        _fail(exc)
    if not args.multirun and "hydra.mode=MULTIRUN" not in args.overrides and not _sweeps(args.overrides):
        return _hydra_main()
    started = time.time()
    result = _hydra_main()
    _report_failed_jobs(started)
    return result


def _sweeps(overrides: list[str]) -> bool:
    """An ``hparams_search=`` option makes the command a sweep (its config sets ``hydra.mode``)."""
    return any(o.lstrip("+").startswith("hparams_search=") and not o.endswith("=null") for o in overrides)


def _report_failed_jobs(started: float) -> None:
    """After a sweep: exit 1 with the count when any job failed (each says why in its failure.json)."""
    try:
        sweep_dir = Path(HydraConfig.get().sweep.dir)
    except ValueError:
        return
    if not sweep_dir.is_dir():
        return
    jobs = [d for d in sweep_dir.iterdir() if d.is_dir() and d.stat().st_mtime >= started - 1]
    failed = sorted((d for d in jobs if (d / FAILURE_FILE).is_file() and (d / FAILURE_FILE).stat().st_mtime >= started),
                    key=lambda d: d.name)
    if not failed:
        return
    print(f"funnelrun: {len(failed)} of {len(jobs)} sweep jobs failed (each directory's {FAILURE_FILE} says why): "
          + ", ".join(str(d) for d in failed), file=sys.stderr, flush=True)
    sys.exit(1)


def _run_tool(tool: str, run: Callable[[list[str]], Any], usage: Callable[[], str], argv: Optional[list[str]]) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(usage(), flush=True)
        return
    flags = [a for a in argv if a.startswith("-")]
    if flags:
        _fail(FunnelrunError(f"unknown option {flags[0]}; {tool} takes key=value overrides (see {tool} --help)"), tool)
    try:
        run(argv)
    except (FunnelrunError, InstantiationException) as exc:
        _fail(exc, tool)
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        elsewhere = " or give a writable sample.out_dir=<dir>" if tool == "funnelrun-sample" else ""
        fix = f"{tool} writes only new files, so earlier outputs are untouched; free space{elsewhere}"
        _fail(_storage_error(exc, fix), tool)


def check_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-check [ckpt_path=<run>] [overrides]``: print the exactness certificate as JSON."""
    from funnelrun.usage import check_help

    def run(args: list[str]) -> Any:
        from funnelrun.pipelines.check import run_check

        return run_check(args)

    _run_tool("funnelrun-check", run, check_help, argv)


def sample_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-sample ckpt_path=<run> [overrides]``: samples at temperatures into a new directory."""
    from funnelrun.usage import sample_help

    def run(args: list[str]) -> Any:
        from funnelrun.pipelines.sample import run_sample

        return run_sample(args)

    _run_tool("funnelrun-sample", run, sample_help, argv)


def eval_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-eval ckpt_path=<run> ood_data=<data option> [overrides]``: anomaly detection scores."""
    from funnelrun.usage import eval_help

    def run(args: list[str]) -> Any:
        from funnelrun.pipelines.anomaly import run_eval

        return run_eval(args)

    _run_tool("funnelrun-eval", run, eval_help, argv)


def export_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-export ckpt_path=<run> export.format=torchscript|onnx``: an exact model as a file."""
    from funnelrun.usage import export_help

    def run(args: list[str]) -> Any:
        from funnelrun.pipelines.export import run_export

        return run_export(args)

    _run_tool("funnelrun-export", run, export_help, argv)


def report_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-report DIR [DIR ...]``: the result table of runs and sweeps."""
    from funnelrun.evaluation.report import main as report

    report(argv)


if __name__ == "__main__":
    main()
