"""``funnelrun-sample``: draw samples from a trained model at one or more temperatures.

    funnelrun-sample model=f_nsf data=four_circles ckpt_path=<run>/checkpoints/last.ckpt \\
        sample.num_samples=5000 'sample.temperatures=[0.5,0.75,1.0]'

Takes the same overrides as ``funnelrun`` (they must match the run that wrote the checkpoint) and
writes, into a new directory ``<checkpoint's run dir>/samples/<time>/`` (or ``sample.out_dir``),
``samples_T<temperature>.pt`` (a tensor of shape (num_samples, *data_shape)) and, for 2-D data, a
scatter plot per temperature. For images, ``samples_T<temperature>.png`` shows the first
:data:`~funnelrun.evaluation.sample.GRID_IMAGES` samples as n-bit images, and
``sample.interpolations=<n>`` writes ``interpolations.png`` (and ``.pt``), n rows of latent
interpolations (:func:`funnelrun.evaluation.sample.interpolations`); for bound models (VAEs, VFlow)
they are skipped with a message.
"""
from __future__ import annotations

from pathlib import Path

import torch

from funnelrun.builder import load_model
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.image_grid import save_image_grid
from funnelrun.evaluation.sample import GRID_IMAGES, INTERPOLATION_STEPS, interpolations, scatter_plot
from funnelrun.pipelines.outputs import new_output_dir


def run_sample(argv: list[str]) -> Path:
    cfg, datamodule, model = load_model(argv)
    if cfg.ckpt_path is None:
        raise FunnelrunError("funnelrun-sample needs ckpt_path=<run>/checkpoints/<file>.ckpt (a trained model)")
    if cfg.sample.interpolations < 0:
        raise FunnelrunError(
            f"sample.interpolations={cfg.sample.interpolations} must be at least 0 (pairs of test images)"
        )
    images = len(datamodule.data_shape) == 3
    out = new_output_dir(cfg.ckpt_path, cfg.sample.out_dir)
    with torch.no_grad():
        for temperature in cfg.sample.temperatures:
            samples = model.sample(cfg.sample.num_samples, temperature=float(temperature))
            torch.save(samples, out / f"samples_T{temperature}.pt")
            if datamodule.data_dim == 2 and datamodule.bounds is not None:
                title = f"{cfg.name}, T = {temperature}"
                scatter_plot(samples, datamodule.bounds, out / f"samples_T{temperature}.png", title)
            if images:
                save_image_grid(samples[:GRID_IMAGES], datamodule.bits, out / f"samples_T{temperature}.png")
    if cfg.sample.interpolations > 0:
        if not images:
            print("sample.interpolations skipped: interpolation rows are drawn for image data only", flush=True)
        elif not model.exact:
            print(
                "sample.interpolations skipped: this model samples its latent (exact: false, e.g. a VAE "
                "encoder); interpolations need a deterministic map from data to latent (flows, funnels)",
                flush=True,
            )
        else:
            rows = interpolations(model, datamodule, cfg.sample.interpolations)
            torch.save(rows, out / "interpolations.pt")
            save_image_grid(rows, datamodule.bits, out / "interpolations.png", ncol=INTERPOLATION_STEPS)
    print(f"{cfg.sample.num_samples} samples at T = {list(cfg.sample.temperatures)} in {out}", flush=True)
    return out
