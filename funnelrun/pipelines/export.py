"""``funnelrun-export``: an exact model as a file that runs without funnelrun.

    funnelrun-export ckpt_path=<run dir or checkpoint> export.format=torchscript|onnx [export.out=<file>]

The model is the run's (rebuilt from its ``config.yaml`` with the checkpoint's weights, the best one
for a run directory: :func:`funnelrun.load_run`), in eval mode, preprocessing layers included, so the
exported log-density is the one ``funnelrun`` reports (per example, nats):

- ``torchscript``: a traced ``torch.jit.ScriptModule``; ``forward(x)`` (and ``log_prob(x)``) give
  log p(x), ``sample(z)`` maps base noise z ~ N(0, I) of shape (n, latent_dim) to data (each funnel
  draws its dropped part from p(x_dropped | z), temperature 1). Load with ``torch.jit.load``.
- ``onnx``: ``log_prob`` only (input ``x``, output ``log_prob``, dynamic batch), through
  ``torch.onnx.export(dynamo=True)`` (needs ``pip install 'funnelrun[export]'``). Sampling is not
  exported: ONNX has no triangular solve, which the inverse of the LU layers needs.

Only exact models are exported (flows and funnels): a bound model's ``log_prob`` is a one-sample
bound drawn at random. The file goes to ``<run>/exports/<checkpoint>.<pt|onnx>`` (or ``export.out``)
and is never overwritten. The spline's bin search is a comparison count (no ``searchsorted``), which
both exporters translate.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from funnelrun.api import Run, load_run
from funnelrun.errors import FunnelrunError
from funnelrun.models.flow import Flow

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
EXPORT_DIR = "exports"
#: examples traced through the model (any batch size runs afterwards)
TRACE_BATCH = 8


class LogProb(nn.Module):
    """log p(x) of a model, as a module the exporters trace (``forward``), with its sampler."""

    def __init__(self, model: Flow):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.log_prob(x)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.model.log_prob(x)

    def sample(self, z: Tensor) -> Tensor:
        return self.model.transform.inverse(z, temperature=1.0)


def _example(run: Run) -> Tensor:
    run.datamodule.setup("test")
    batch = next(iter(run.datamodule.test_dataloader()))
    return (batch[0] if isinstance(batch, (list, tuple)) else batch)[:TRACE_BATCH]


def export_torchscript(model: Flow, example: Tensor, path: Path) -> None:
    """Trace ``forward``/``log_prob`` on ``example`` and ``sample`` on base noise, save to ``path``."""
    module = LogProb(model).eval()
    noise = torch.randn(example.shape[0], model.latent_dim)
    with warnings.catch_warnings():
        # shape-dependent Python branches in the layers depend on the architecture, not the batch
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        methods = {"forward": example, "log_prob": example, "sample": noise}
        traced = torch.jit.trace_module(module, methods, check_trace=False)
    torch.jit.save(traced, str(path))


def export_onnx(model: Flow, example: Tensor, path: Path) -> None:
    """``torch.onnx.export`` (dynamo) of log p(x), with a dynamic batch dimension."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
    except ImportError as exc:
        raise FunnelrunError(
            "export.format=onnx needs onnx and onnxscript: pip install 'funnelrun[export]'"
        ) from exc
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        LogProb(model).eval(), (example,), dynamo=True, input_names=["x"], output_names=["log_prob"],
        dynamic_shapes=({0: batch},), verbose=False,
    )
    assert program is not None  # dynamo=True returns the program
    program.save(str(path))


def parse_args(argv: list[str]) -> dict[str, Optional[str]]:
    allowed = {"ckpt_path": None, "export.format": "torchscript", "export.out": None, "data.data_dir": None}
    args = dict(allowed)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            raise FunnelrunError(f"unknown argument {arg!r}; funnelrun-export takes {', '.join(allowed)} (see --help)")
        args[key] = value
    if not args["ckpt_path"]:
        raise FunnelrunError("funnelrun-export needs ckpt_path=<run dir or checkpoint> (see --help)")
    if args["export.format"] not in FORMATS:
        raise FunnelrunError(f"export.format={args['export.format']} is not one of {', '.join(FORMATS)}")
    return args


def run_export(argv: list[str]) -> Path:
    args = parse_args(argv)
    overrides = [f"data.data_dir={args['data.data_dir']}"] if args["data.data_dir"] else None
    run = load_run(str(args["ckpt_path"]), overrides=overrides)
    if not run.model.exact:
        raise FunnelrunError(
            f"{run.checkpoint} is a model that gives a bound (exact: false): its log_prob is a one-sample "
            "bound drawn at random, not a density to export; export a flow or funnel model"
        )
    fmt = str(args["export.format"])
    default = run.path / EXPORT_DIR / (run.checkpoint.stem + FORMATS[fmt])
    out = Path(args["export.out"]) if args["export.out"] else default
    if out.exists():
        raise FunnelrunError(f"{out} exists and is never overwritten; remove it or pass export.out=<another file>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    example = _example(run)
    try:
        (export_torchscript if fmt == "torchscript" else export_onnx)(run.model, example, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{fmt} export of {run.checkpoint}: {out} ({out.stat().st_size:,} bytes)", flush=True)
    return out
