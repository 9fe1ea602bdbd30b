"""The LightningModule's test path: importance-weighted test/nll beside the bound for models that
give one (exact: false); exact models report only test/nll."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from funnelrun.models.flow import Flow
from funnelrun.models.vflow import build_vflow
from funnelrun.training.module import DensityEstimator

from toys import linear_gaussian_vae


def _test_results(model: Flow, x: torch.Tensor, **kwargs) -> dict:
    module = DensityEstimator(model, **kwargs)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.test(module, DataLoader(TensorDataset(x), batch_size=300), verbose=False)
    return module.results


def test_bound_with_exact_posterior_reports_the_analytic_nll_twice():
    torch.manual_seed(0)
    model, marginal = linear_gaussian_vae()
    x = marginal.sample((1000,))
    results = _test_results(model, x, is_samples=5, is_chunk_size=2)
    truth = -marginal.log_prob(x).mean().item()
    assert results["test/nll"] == pytest.approx(truth, abs=1e-9)
    assert results["test/nll_elbo"] == pytest.approx(truth, abs=1e-9)


def test_bound_reports_the_importance_weighted_estimate_as_test_nll():
    torch.manual_seed(0)
    model, marginal = linear_gaussian_vae(mean_shift=0.5, log_std_shift=0.3)
    x = marginal.sample((1000,))
    results = _test_results(model, x, is_samples=100)
    truth = -marginal.log_prob(x).mean().item()
    assert truth - 0.01 < results["test/nll"] < results["test/nll_elbo"] - 0.5


def test_exact_model_reports_only_its_nll():
    torch.manual_seed(0)
    model = build_vflow((2,), augment_dim=0, num_steps=1, hidden_features=8, num_blocks=1).eval()
    x = torch.randn(600, 2)
    results = _test_results(model, x)
    assert "test/nll_elbo" not in results
    with torch.no_grad():
        assert results["test/nll"] == pytest.approx(-model.log_prob(x).double().mean().item(), abs=1e-5)


def test_training_step_tells_the_entropy_warmup_its_step():
    torch.manual_seed(0)
    model = build_vflow((2,), augment_dim=2, num_steps=1, hidden_features=8, num_blocks=1,
                        entropy_warmup_steps=8, entropy_warmup_start=0.0)
    (augment,) = [m for m in model.modules() if hasattr(m, "set_step")]
    module = DensityEstimator(model, lr=1e-3)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_steps=3)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=16))
    assert augment.entropy_weight.item() == pytest.approx(2 / 8)  # set before the third step (step 2)
