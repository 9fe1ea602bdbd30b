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
import re
import shlex
import shutil
import sys
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from funnelrun.config import check_overrides, register_configs
from funnelrun.console import console_log
from funnelrun.errors import FunnelrunError, RunInterrupted
from funnelrun.validation import check_devices

register_configs()

#: disk full, quota exceeded, read-only file system, permission denied
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
#: the run's console output, kept in its directory
LOG_FILE = "funnelrun.log"


def _fail(exc: BaseException, tool: str = "funnelrun") -> NoReturn:
    message = str(exc)
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        message = str(exc.__cause__)
    print(f"{tool}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


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


def _holds_only_log(run_dir: Path) -> bool:
    return run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOG_FILE}


def train_job(cfg: DictConfig) -> float:
    """Train and test one model (one Hydra job); returns the best validation NLL, which Hydra sweepers
    (e.g. hydra/sweeper=optuna) minimise: tuning on the test split would leak it into the result.

    Everything printed is also appended to ``<run>/funnelrun.log`` (on rank 0). A problem found
    before anything was written (a config value out of range, an unreachable latent size, no GPU)
    removes the directory Hydra made for this job, which then holds nothing but that log."""
    from lightning.pytorch.utilities import rank_zero_only

    from funnelrun.pipelines.ldmask import is_ldmask, train_ldmask
    from funnelrun.pipelines.train import summary_lines, train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    rank_zero = rank_zero_only.rank == 0  # type: ignore[attr-defined]  # set on the function by Lightning
    fresh = rank_zero and run_dir.is_dir() and not any(run_dir.iterdir())
    discard = False
    try:
        with console_log(run_dir / LOG_FILE) if rank_zero else nullcontext():
            try:
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
                _fail(FunnelrunError(
                    f"could not write {exc.filename or 'the run outputs'}: {exc.strerror}. Free space or choose "
                    f"a writable hydra.run.dir; files are written atomically, so earlier outputs are untouched"
                ))
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
    except FunnelrunError as exc:
        _fail(exc)
    return _hydra_main()


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
