"""``funnelrun-sample``: samples at temperatures from a checkpoint, into a new directory."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from funnelrun.cli import sample_main as main
from funnelrun.data.base import FunnelDataModule, TensorRows
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.image_grid import save_image_grid, to_unit_interval
from funnelrun.evaluation.sample import interpolations

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def test_samples_at_temperatures_from_a_checkpoint(run_cli, tmp_path, capsys):
    assert run_cli(tmp_path / "run", *TINY).code == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    args = [*TINY, f"ckpt_path={ckpt}", "sample.num_samples=64", "sample.temperatures=[0.0,1.0]"]
    main(args)
    main(args)  # a second call writes a second directory, never over the first
    dirs = sorted((tmp_path / "run" / "samples").glob("*"))
    assert len(dirs) == 2
    zero = torch.load(dirs[0] / "samples_T0.0.pt")
    one = torch.load(dirs[0] / "samples_T1.0.pt")
    assert zero.shape == one.shape == (64, 2) and torch.isfinite(one).all()
    # T = 0: every Gaussian at its mean, so every sample is the same point
    assert torch.allclose(zero, zero[:1].expand_as(zero))
    assert one.std(0).min() > 0.1
    assert (dirs[0] / "samples_T1.0.png").stat().st_size > 1000
    assert "64 samples at T = [0.0, 1.0]" in capsys.readouterr().out


def test_sampling_needs_a_checkpoint(capsys):
    with pytest.raises(SystemExit) as info:
        main([*TINY])
    assert info.value.code == 2 and "ckpt_path" in capsys.readouterr().err


# -- images ---------------------------------------------------------------------------------------
DIGITS_VAE = [
    "data=digits", "data.batch_size=32", "model=vae", "model.latent_dim=4", "model.channels=[4,8]",
    "model.blocks_per_stage=1", "trainer.max_steps=4", "trainer.val_check_interval=2", "eval.is_samples=4",
]


class _Images(FunnelDataModule):
    """4-bit 1x8x8 test images (integers + 0.5), no file."""

    data_shape, bits = (1, 8, 8), 4

    def __init__(self, n: int = 6):
        super().__init__(batch_size=4, eval_batch_size=4, seed=0)
        self.test = TensorRows(torch.randint(0, 16, (n, 1, 8, 8), generator=torch.Generator().manual_seed(0)) + 0.5)


def test_image_model_writes_grids_and_skips_interpolations_for_a_bound(run_cli, tmp_path, capsys):
    train = run_cli(tmp_path / "run", *DIGITS_VAE)
    assert train.code == 0, train.err
    grids = [str(tmp_path / "run" / f"samples_T{t}.png") for t in (0.5, 0.75, 1.0)]
    # funnelrun's own grids, one per eval.temperatures, named relative to the run
    assert [str(tmp_path / "run" / g) for g in train.metrics["sample_grids"]] == grids
    assert Image.open(grids[-1]).size[0] >= 256
    args = [*DIGITS_VAE, f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "sample.num_samples=16",
            "sample.temperatures=[0.5,1.0]", "sample.interpolations=2"]
    main(args)
    main(args)
    first, second = sorted((tmp_path / "run" / "samples").glob("*"))
    for t in ("0.5", "1.0"):
        assert torch.load(first / f"samples_T{t}.pt").shape == (16, 1, 8, 8)
        grid = np.asarray(Image.open(first / f"samples_T{t}.png"))
        assert grid.ndim == 2 and grid.dtype == np.uint8  # one grey channel
        assert (second / f"samples_T{t}.png").exists()
    assert not (first / "interpolations.png").exists()
    assert "interpolations skipped" in capsys.readouterr().out


def test_grid_shows_the_n_bit_images():
    """floor, clamp to [0, 2^n - 1], divide by 2^n - 1; white padding between images."""
    values = torch.tensor([-3.0, 0.9, 7.5, 15.99, 40.0]).view(1, 1, 1, 5).expand(2, 1, 1, 5)
    assert torch.equal(to_unit_interval(values, 4)[0, 0, 0], torch.tensor([0.0, 0.0, 7 / 15, 1.0, 1.0]))
    path = save_image_grid(values, 4, Path(tempfile.mkdtemp()) / "grid.png", ncol=2, pad=1)
    grid = np.asarray(Image.open(path))
    scale = grid.shape[1] // (2 * 5 + 3)
    grid = grid[::scale, ::scale]  # undo the nearest-neighbour enlargement
    assert grid.shape == (3, 13)
    assert (grid[0] == 255).all() and (grid[:, 0] == 255).all() and grid[1, 6] == 255
    assert grid[1, 1:6].tolist() == [0, 0, round(7 / 15 * 255), 255, 255]
    assert grid[1, 7:12].tolist() == grid[1, 1:6].tolist()


def test_interpolations_decode_the_line_between_two_test_latents():
    from funnelrun.models.flow import Flow
    from funnelrun.transforms.flatten import Flatten
    from funnelrun.transforms.preprocess import Logit, Rescale

    data = _Images()
    model = Flow([Rescale(4), Logit(0.05), Flatten((1, 8, 8))], (1, 8, 8)).eval()
    rows = interpolations(model, data, pairs=2, steps=5).view(2, 5, 1, 8, 8)
    x = data.test.data[:4]
    # a bijection: the ends are the test images themselves, the middle decodes the mean latent
    assert torch.allclose(rows[:, 0], x[0::2], atol=1e-4) and torch.allclose(rows[:, -1], x[1::2], atol=1e-4)
    z = model.transform(x)[0]
    middle = model.transform.inverse((z[0::2] + z[1::2]) / 2)
    assert torch.allclose(rows[:, 2], middle.view(2, 1, 8, 8), atol=1e-4)
    with pytest.raises(FunnelrunError, match="needs 8 test images"):
        interpolations(model, data, pairs=4)


def test_wandb_gets_the_sample_grids_offline(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    train = run_cli(tmp_path / "run", *DIGITS_VAE, "logger=wandb")
    assert train.code == 0, train.err
    (offline,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    logged = list((offline / "files" / "media" / "images").glob("samples_*.png"))
    assert len(logged) == 3  # one per temperature
    assert offline.name.endswith((tmp_path / "run" / "wandb_run_id").read_text().strip())
