"""``funnelrun-sample``: draw samples from a trained model at one or more temperatures.

    funnelrun-sample ckpt_path=<run> sample.num_samples=5000 'sample.temperatures=[0.5,0.75,1.0]'

``ckpt_path`` is the run's directory (its best-by-validation checkpoint) or one of its checkpoint
files; the model and data come from the run's ``config.yaml`` (:mod:`funnelrun.pipelines.followup`:
only ``sample.*``, ``seed``, ``data.data_dir`` and the device may change). It writes, into a new
directory ``<run>/samples/<date>_<time>/`` (or under ``sample.out_dir``), ``samples_T<temperature>.pt``
(a tensor of shape (num_samples, *data_shape)) and, for 2-D data, a histogram of the samples per
temperature. For images, ``samples_T<temperature>.png`` shows the first
:data:`~funnelrun.evaluation.sample.GRID_IMAGES` samples as n-bit images, and
``sample.interpolations=<n>`` writes ``interpolations.png`` (and ``.pt``), n rows of latent
interpolations (:func:`funnelrun.evaluation.sample.interpolations`); for bound models (VAEs, VFlow)
they are skipped with a message.
"""
from __future__ import annotations

from pathlib import Path
from typing import cast

import torch

from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.image_grid import save_image_grid
from funnelrun.evaluation.sample import GRID_IMAGES, INTERPOLATION_STEPS, interpolations, scatter_plot
from funnelrun.pipelines.followup import read_run
from funnelrun.pipelines.outputs import new_output_dir


def run_sample(argv: list[str]) -> Path:
    run = read_run(argv, "funnelrun-sample")
    cfg, datamodule, model = run.config, run.datamodule, run.model
    torch.manual_seed(cfg.seed)
    if cfg.sample.interpolations < 0:
        raise FunnelrunError(
            f"sample.interpolations={cfg.sample.interpolations} must be at least 0 (pairs of test images)"
        )
    images = len(datamodule.data_shape) == 3
    out = new_output_dir(run.path, cfg.sample.out_dir)
    with torch.no_grad():
        for temperature in cfg.sample.temperatures:
            samples = model.sample(cfg.sample.num_samples, temperature=float(temperature))
            torch.save(samples, out / f"samples_T{temperature}.pt")
            if datamodule.data_dim == 2 and datamodule.bounds is not None:
                title = f"{cfg.name}, T = {temperature}"
                scatter_plot(samples, datamodule.bounds, out / f"samples_T{temperature}.png", title)
            if images:
                save_image_grid(samples[:GRID_IMAGES], cast(int, datamodule.bits), out / f"samples_T{temperature}.png")
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
            save_image_grid(rows, cast(int, datamodule.bits), out / "interpolations.png", ncol=INTERPOLATION_STEPS)
    print(f"{cfg.sample.num_samples} samples at T = {list(cfg.sample.temperatures)} in {out}", flush=True)
    return out
