"""Console entry points: ``funnelrun`` (train and test) and ``funnelrun-check`` (exactness)."""
from __future__ import annotations

import errno
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from funnelrun.config import register_configs
from funnelrun.errors import FunnelrunError

register_configs()

#: disk full, quota exceeded, read-only file system, permission denied
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _fail(exc: BaseException) -> None:
    message = str(exc)
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        message = str(exc.__cause__)
    print(f"funnelrun: error: {message}", file=sys.stderr, flush=True)
    sys.exit(getattr(exc, "exit_code", 2))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train and test one model; returns the best validation NLL, which Hydra sweepers (e.g.
    hydra/sweeper=optuna) minimise: tuning on the test split would leak it into the result."""
    from funnelrun.training.run import summary_lines, train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = train(cfg, run_dir)
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


def check_main(argv: list[str] | None = None) -> None:
    """``funnelrun-check [overrides] [ckpt_path=...]``: print the exactness certificate as JSON."""
    from funnelrun.evaluation.certificate import run_check

    try:
        run_check(sys.argv[1:] if argv is None else argv)
    except (FunnelrunError, InstantiationException) as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
