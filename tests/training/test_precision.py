"""Reduced precision in the conditioner nets only (trainer.precision=bf16-mixed): every other part of
the likelihood stays fp32, a tiny trained model's log p moves by at most 1e-3 nats per dimension, the
round trip holds, the test split is scored in fp32, and the models not shown safe are refused."""
from __future__ import annotations

import math

import pytest
import torch

from funnelrun.models.f_nsf import build_f_nsf
from funnelrun.models.flow import Flow
from funnelrun.models.glow import build_glow
from funnelrun.models.nsf import build_nsf
from funnelrun.transforms.linear import LULinear, RandomPermutation
from funnelrun.transforms.nets import ResidualNet, conditioner, conditioner_precision, mlp

from conftest import TINY, TINY_NSF

pytestmark = pytest.mark.usefixtures("one_thread")

D = 6
BF16 = torch.bfloat16


def _data(n: int, generator: torch.Generator) -> torch.Tensor:
    """A correlated, bounded 6-D set (tanh of a linear map of a Gaussian, plus noise)."""
    mixing = torch.linspace(-1.0, 1.0, D * D).reshape(D, D).sin() + torch.eye(D)
    x = torch.randn(n, D, generator=generator) @ mixing
    return 2 * torch.tanh(x / 2) + 0.1 * torch.randn(n, D, generator=generator)


#: the models declared mixed-precision safe: NSF and F-NSF, coupling and autoregressive, both p_phi
SAFE_MODELS = {
    "nsf-coupling": lambda: build_nsf((D,), num_steps=3, hidden_features=24, num_blocks=1),
    "nsf-autoregressive": lambda: build_nsf(
        (D,), num_steps=3, hidden_features=24, num_blocks=1, transform="autoregressive"
    ),
    "f_nsf-coupling-flow": lambda: build_f_nsf((D,), num_steps=3, hidden_features=24, num_blocks=1, latent_dim=3),
    "f_nsf-coupling-gaussian": lambda: build_f_nsf(
        (D,), num_steps=3, hidden_features=24, num_blocks=1, latent_dim=3, conditional="gaussian"
    ),
    "f_nsf-autoregressive": lambda: build_f_nsf(
        (D,), num_steps=3, hidden_features=24, num_blocks=1, latent_dim=3, transform="autoregressive"
    ),
}


def _train_bf16(model: Flow, steps: int = 60) -> None:
    generator = torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        with conditioner_precision(BF16, "cpu"):
            loss = -model.log_prob(_data(256, generator)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name", sorted(SAFE_MODELS))
def test_trained_model_log_p_moves_less_than_1e3_nats_per_dimension(name):
    torch.manual_seed(0)
    model = SAFE_MODELS[name]()
    assert model.mixed_precision_safe
    start = {k: v.clone() for k, v in model.state_dict().items()}
    _train_bf16(model)
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())  # it trained
    x = _data(2000, torch.Generator().manual_seed(2))
    with torch.no_grad():
        fp32 = model.log_prob(x)
        with conditioner_precision(BF16, "cpu"):
            reduced = model.log_prob(x)
    assert reduced.dtype == torch.float32
    assert not torch.equal(fp32, reduced)  # the conditioners did run in bf16
    per_dim = (reduced - fp32).abs() / D
    assert per_dim.mean() <= 1e-3, f"{name}: mean |d log p| / D = {per_dim.mean():.2e}"
    # what a reported mean NLL sees: far below the per-example bound
    assert (reduced.mean() - fp32.mean()).abs() / D <= 1e-4
    # the round trip of the bf16-trained weights (fp32: sampling and every tool run in fp32)
    with torch.no_grad():
        if model.transform.bijective:
            torch.testing.assert_close(model.transform.inverse(model.encode(x[:200])), x[:200], atol=1e-4, rtol=0)
        else:  # funnels: the right inverse, forward(inverse(z)) == z
            z = model.encode(x[:200])
            torch.testing.assert_close(model.encode(model.decode(z, temperature=1.0)), z, atol=1e-4, rtol=0)


def test_coupling_round_trip_holds_with_bf16_conditioners():
    """Forward and inverse of a coupling both see the same conditioner output, bf16 or not."""
    torch.manual_seed(0)
    model = SAFE_MODELS["nsf-coupling"]()
    _train_bf16(model, steps=30)
    x = _data(500, torch.Generator().manual_seed(3))
    with torch.no_grad(), conditioner_precision(BF16, "cpu"):
        z, _ = model.transform(x)
        torch.testing.assert_close(model.transform.inverse(z), x, atol=1e-4, rtol=0)


def test_only_the_conditioners_leave_fp32():
    """A model without conditioners (permutation, LU) is bit-identical in the context; a conditioner's
    output is fp32 and differs from its fp32 value; outside the context the nets are untouched."""
    torch.manual_seed(0)
    linear = Flow([RandomPermutation(D, seed=0), LULinear(D)], (D,))
    with torch.no_grad():
        linear.transform.transforms[1].lu.add_(0.3 * torch.randn(D, D))
    x = torch.randn(64, D)
    with torch.no_grad(), conditioner_precision(BF16, "cpu"):
        inside = linear.log_prob(x)
    assert torch.equal(inside, linear.log_prob(x))

    net = ResidualNet(D, 10, hidden_features=64, num_blocks=2)
    for seq in (net, mlp(D, 10, 64, depth=3)):
        with torch.no_grad():
            for p in seq.parameters():
                p.normal_(0, 0.3)
            plain = conditioner(seq, x)
            assert torch.equal(plain, seq(x))
            with conditioner_precision(BF16, "cpu"):
                reduced = conditioner(seq, x)
                assert not torch.is_autocast_enabled("cpu")  # autocast only inside the call
        assert reduced.dtype == torch.float32 and not torch.equal(reduced, plain)
        assert (reduced - plain).norm() / plain.norm() < 0.02  # bf16's rounding, not another function


def test_unsafe_models_do_not_declare_it():
    assert not build_glow((D,), num_steps=2, hidden_features=8, num_blocks=1).mixed_precision_safe
    assert not build_nsf((D,), num_steps=2, hidden_features=8, transform="affine").mixed_precision_safe


def test_bf16_run_records_its_precisions_and_scores_in_fp32(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY, "trainer.precision=bf16-mixed")
    assert result.code == 0, result.err
    m = result.metrics
    assert (m["train_precision"], m["test_precision"], m["tf32"]) == ("bf16-mixed", "32-true", False)
    assert math.isfinite(m["test/nll"]) and m["steps"] == 6


def test_bf16_run_of_an_untested_model_is_refused(run_cli, tmp_path):
    result = run_cli(tmp_path / "run", *TINY_NSF, "model=nsf", "model.transform=affine", "trainer.precision=bf16-mixed")
    assert result.code == 2
    assert "trainer.precision=bf16-mixed is refused" in result.err and "model=nsf and model=f_nsf" in result.err
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["trainer.precision=16-mixed"], "16-mixed needs a CUDA GPU"),
        (["trainer.tf32=true"], "trainer.tf32=true applies to CUDA"),
        (["trainer.precision=bf16-true"], "trainer.precision=bf16-true is not supported"),
    ],
)
def test_cpu_refuses_cuda_only_precisions(run_cli, tmp_path, overrides, fragment):
    result = run_cli(tmp_path / "run", *TINY, *overrides)
    assert result.code == 2 and fragment in result.err and "funnelrun: error:" in result.err
    assert not (tmp_path / "run").exists()
