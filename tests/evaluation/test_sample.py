"""``funnelrun-sample``: samples at temperatures from a checkpoint, into a new directory."""
from __future__ import annotations

import pytest
import torch

from conftest import TINY
from funnelrun.evaluation.sample import main


def test_samples_at_temperatures_from_a_checkpoint(run_cli, tmp_path, capsys):
    assert run_cli(tmp_path / "run", *TINY).code == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    args = [*TINY, f"ckpt_path={ckpt}", "sample.num_samples=64", "sample.temperatures=[0.0,1.0]"]
    main(args)
    main(args)  # a second call writes a second directory, never over the first
    dirs = sorted((tmp_path / "run" / "samples").glob("*/*"))
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
