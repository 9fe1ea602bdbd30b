"""Exactness on the GPU, in fp32: every layer's round trip (or a funnel's right inverse) and log-det
against the autograd Jacobian (funnelrun/evaluation/certificate.py), the convolutional funnel and the
max-pool surjection, the 2-D density integral, log p on the GPU against the CPU, and the image batch
path on the device (uint8 batches, noise drawn there, keyed by step).

Marked ``cuda``: skipped, with the reason, where there is no GPU (``make test`` stays CPU-only);
``scripts/gpu_check.sh`` runs them on a lent GPU, and its ``--cpu-dry-run`` runs them on the CPU
(``FUNNELRUN_TEST_DEVICE=cpu``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from funnelrun.builder import build_data, build_model
from funnelrun.config import compose_config
from funnelrun.evaluation import certificate
from funnelrun.evaluation.certificate import certify
from funnelrun.evaluation.metrics import bits_per_dim

from conftest import TINY, TINY_NSF

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("one_thread")]

DIGITS_TINY_IMAGE = ["data=digits", "model.image.levels=1", "model.image.steps_per_level=1",
                     "model.image.hidden_channels=8", "model.image.num_res_blocks=1"]
MODELS = {
    "nsf (2-D)": ["model=nsf", *TINY_NSF],
    "f_nsf (2-D)": TINY,
    "nsf (multi-scale, digits)": ["model=nsf", *DIGITS_TINY_IMAGE],
    "f_nsf conv funnel (digits)": ["model=f_nsf", "model.latent_dim=null", "model.image.funnel=conv",
                                   "model.image.conditional_hidden_features=8", *DIGITS_TINY_IMAGE],
    "f_nsf max-pool (digits)": ["model=f_nsf", "model.latent_dim=null", "model.image.funnel=maxpool",
                                "model.image.conditional_hidden_features=8", *DIGITS_TINY_IMAGE],
    "glow (digits)": ["model=glow", *DIGITS_TINY_IMAGE],
    "f_mlp (digits)": ["model=f_mlp", "model.latent_dim=16", "model.conditional_hidden_features=8",
                       *DIGITS_TINY_IMAGE[:1]],
}


def _model_and_batch(overrides: list[str]):
    """Data module, model (initialised on the CPU) and a test batch of ``overrides``."""
    cfg = compose_config(overrides)
    dm = build_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, dm).eval()
    x = next(iter(dm.test_dataloader()))[:32]
    with torch.no_grad():
        model.log_prob(x)  # data-dependent initialisation (ActNorm), on the CPU copy's batch
    return dm, model, x


@pytest.mark.parametrize("overrides", list(MODELS.values()), ids=list(MODELS))
def test_exactness_certificate_on_the_device_in_fp32(device: torch.device, overrides: list[str], monkeypatch) -> None:
    # autograd Jacobians of 4 examples per layer (not 16): one backward pass per dimension each, which on
    # a GPU is kernel-launch bound
    monkeypatch.setattr(certificate, "JACOBIAN_EXAMPLES", 4)
    dm, model, x = _model_and_batch(overrides)
    with torch.no_grad():
        on_cpu = model.log_prob(x)
    model, x = model.to(device), x.to(device)
    assert all(p.dtype == torch.float32 and p.device.type == device.type for p in model.parameters())
    result = certify(model, x, dm.bounds, points_per_axis=200)
    assert result["exact"] is True
    assert result["roundtrip_max_abs_err"] < 1e-4, result
    assert result["logdet_max_abs_err"] < 1e-3, result
    if dm.data_dim == 2:
        assert result["density_integral"] == pytest.approx(1.0, abs=0.02)
    with torch.no_grad():
        log_p = model.log_prob(x)
    assert log_p.dtype == torch.float32 and log_p.device.type == device.type
    # the same numbers as on the CPU, to fp32 rounding of sums of hundreds of terms
    assert torch.allclose(log_p.cpu(), on_cpu, rtol=1e-4, atol=1e-3), (log_p.cpu() - on_cpu).abs().max()
    if dm.bits is not None:
        bpd = bits_per_dim(-log_p.double().mean().item(), dm.data_dim, dm.bits)
        assert bpd == pytest.approx(bits_per_dim(-on_cpu.double().mean().item(), dm.data_dim, dm.bits), rel=1e-5)


def test_training_batches_dequantized_on_the_device(device: torch.device, tmp_path: Path) -> None:
    """uint8 batches go to the device and get their noise there: x_n + u with u in [0, 1), the same
    for the same (seed, step) whatever came before (a resumed run), other for another step."""
    from funnelrun.data.images import ImageDataModule
    from funnelrun.data.synthetic import random_images, write_cifar10

    write_cifar10(tmp_path, random_images(60, (3, 32, 32), 0), random_images(10, (3, 32, 32), 1))
    dm = ImageDataModule("cifar10", str(tmp_path), bits=5, batch_size=10, val_size=10, seed=3)
    dm.pin_memory = device.type == "cuda"
    batches = [b for _, b in zip(range(6), dm.train_dataloader())]
    if device.type == "cuda":
        assert all(b.images.is_pinned() for b in batches)
    moved = [b.to(device) for b in batches]
    assert all(b.images.dtype == torch.uint8 and b.images.device.type == device.type for b in moved)
    x = [dm.dequantize_training_batch(b) for b in moved]
    assert all(y.dtype == torch.float32 and y.device.type == device.type for y in x)
    for y, b in zip(x, moved):
        assert torch.equal(y.floor(), b.images.float()) and y.max() < 32
    resumed = ImageDataModule("cifar10", str(tmp_path), bits=5, batch_size=10, val_size=10, seed=3)
    resumed.load_state_dict({"global_step": 4})
    again = resumed.dequantize_training_batch(next(iter(resumed.train_dataloader())).to(device))
    noise = [y - y.floor() for y in x]
    assert torch.equal(again, x[4]) and not torch.equal(noise[4], noise[3])
    noise = torch.cat(noise).double()
    assert abs(noise.mean().item() - 0.5) < 0.01 and noise.min() >= 0 and noise.max() < 1
    assert np.isfinite(noise.cpu().numpy()).all()
