"""Console entry points: ``funnelrun`` (train and test), ``funnelrun-sample``, ``funnelrun-eval``,
``funnelrun-check`` and ``funnelrun-report``. Each turns a user-facing problem
(:class:`~funnelrun.errors.FunnelrunError`) into ``<tool>: error: <message>`` and exit status 2."""
from __future__ import annotations

import errno
import math
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from funnelrun.config import register_configs
from funnelrun.errors import FunnelrunError

register_configs()

#: disk full, quota exceeded, read-only file system, permission denied
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _fail(exc: BaseException, tool: str = "funnelrun") -> NoReturn:
    message = str(exc)
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        message = str(exc.__cause__)
    print(f"{tool}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(getattr(exc, "exit_code", 2))


@hydra.main(version_base="1.3", config_path="pkg://funnelrun.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train and test one model; returns the best validation NLL, which Hydra sweepers (e.g.
    hydra/sweeper=optuna) minimise: tuning on the test split would leak it into the result."""
    from lightning.pytorch.utilities import rank_zero_only

    from funnelrun.pipelines.ldmask import is_ldmask, train_ldmask
    from funnelrun.pipelines.train import summary_lines, train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = (train_ldmask if is_ldmask(cfg) else train)(cfg, run_dir)
    except (FunnelrunError, InstantiationException) as exc:
        _fail(exc)
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        _fail(FunnelrunError(
            f"could not write {exc.filename or 'the run outputs'}: {exc.strerror}. Free space or choose a "
            f"writable hydra.run.dir; files are written atomically, so earlier outputs are untouched"
        ))
    if rank_zero_only.rank == 0:
        for line in summary_lines(metrics, run_dir):
            print(line, flush=True)
    return metrics["val/nll"] if metrics["val/nll"] is not None else math.inf


def _run_tool(tool: str, run: Callable[[list[str]], Any], argv: Optional[list[str]]) -> None:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except (FunnelrunError, InstantiationException) as exc:
        _fail(exc, tool)


def check_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-check [overrides] [ckpt_path=...]``: print the exactness certificate as JSON."""
    from funnelrun.pipelines.check import run_check

    _run_tool("funnelrun-check", run_check, argv)


def sample_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-sample [overrides] ckpt_path=...``: samples at temperatures into a new directory."""
    from funnelrun.pipelines.sample import run_sample

    _run_tool("funnelrun-sample", run_sample, argv)


def eval_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-eval [overrides] ckpt_path=... ood_data=...``: anomaly detection scores."""
    from funnelrun.pipelines.anomaly import run_eval

    _run_tool("funnelrun-eval", run_eval, argv)


def export_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-export ckpt_path=... export.format=torchscript|onnx``: an exact model as a file."""
    from funnelrun.pipelines.export import USAGE, run_export

    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return
    _run_tool("funnelrun-export", run_export, args)


def report_main(argv: Optional[list[str]] = None) -> None:
    """``funnelrun-report DIR [DIR ...]``: the result table of runs and sweeps."""
    from funnelrun.evaluation.report import main as report

    report(argv)


if __name__ == "__main__":
    main()
