"""Image VFlow (Chen et al. 2020, §3.1, §6): augmented channels a ~ q(a | x), a multi-scale flow on
the (C + augment_channels)-channel image, the one-sample ELBO of eq. (3) and the estimate of eq. (5)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.models.image_flows import build_image_nsf
from funnelrun.models.vflow import build_vflow
from funnelrun.surjections.augment import Augment
from funnelrun.transforms.image_coupling import ImageAffineCoupling, MaskKind

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)
IMAGE = dict(levels=2, steps_per_level=1, hidden_channels=8, num_res_blocks=1, dropout=0.0,
             augment_channels=2, q_hidden_channels=8)
P_KEYS = ("levels", "steps_per_level", "hidden_channels", "num_res_blocks", "dropout")
#: ``funnelrun model=vflow data=digits`` in a second or two
DIGITS_TINY = [
    "model=vflow", "data=digits", "data.batch_size=32", "model.image.levels=1", "model.image.steps_per_level=1",
    "model.image.hidden_channels=8", "model.image.num_res_blocks=1", "model.image.augment_channels=1",
    "model.image.q_hidden_channels=8", "trainer.max_steps=4", "trainer.val_check_interval=2", "eval.is_samples=4",
]


def _images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(0))


def test_shapes_of_the_augmented_flow():
    model = build_vflow(SHAPE, image=IMAGE)
    augment, _ = model.transform.transforms
    assert isinstance(augment, Augment) and augment.q.shape == (2, 8, 8)
    assert model.exact is False and model.latent_dim == 3 * 8 * 8
    augmented, log_q = augment(_images())
    assert augmented.shape == (6, 3, 8, 8) and log_q.shape == (6,)
    assert model.log_prob(_images()).shape == (6,)
    assert model.sample(4).shape == (4, *SHAPE)


def test_q_conditions_on_the_image_with_checkerboards_for_one_channel():
    augment, _ = build_vflow(SHAPE, image={**IMAGE, "augment_channels": 1, "q_steps": 3}).transform.transforms
    couplings = list(augment.q.transform.transforms)
    assert len(couplings) == 3 and all(isinstance(c, ImageAffineCoupling) for c in couplings)
    assert all(c.mask is MaskKind.checkerboard for c in couplings)
    assert couplings[0].conditioner.initial_layer.in_channels == 1 + SHAPE[0]  # a's mask, then x
    assert not any(isinstance(m, nn.BatchNorm2d) for m in augment.q.modules())
    assert all(m.p == 0 for m in augment.q.modules() if isinstance(m, nn.Dropout))


def test_bound_is_finite_and_gradients_reach_p_and_q():
    torch.manual_seed(0)
    model = build_vflow(SHAPE, image=IMAGE)
    bound = model.log_prob(_images())
    assert torch.isfinite(bound).all()
    (-bound.mean()).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    q_last = [g for name, g in grads.items() if name.startswith("transform.transforms.0.") and "final_layer" in name]
    assert q_last and all(g.abs().sum() > 0 for g in q_last)


def test_importance_weighted_estimate_is_above_the_bound_on_average():
    torch.manual_seed(0)
    model = build_vflow(SHAPE, image=IMAGE)
    for name, p in model.named_parameters():  # a q far from the posterior: a visible gap
        if "final_layer" in name:
            nn.init.normal_(p, std=0.05)
    model.eval()
    x = _images(8)
    with torch.no_grad():
        bounds = torch.stack([model.log_prob(x) for _ in range(16)]).double().mean()
    estimate = importance_weighted_log_prob(model, x, num_samples=64).mean()
    assert math.isfinite(estimate.item()) and estimate > bounds


def test_without_augmented_channels_it_is_the_exact_image_flow():
    image = {**IMAGE, "augment_channels": 0}
    torch.manual_seed(3)
    model = build_vflow(SHAPE, image=image).eval()
    torch.manual_seed(3)
    plain = build_image_nsf(SHAPE, affine=True, image={k: v for k, v in IMAGE.items() if k in P_KEYS}).eval()
    assert model.exact is True and model.latent_dim == 64
    assert not any(isinstance(m, Augment) for m in model.modules())
    x = _images()
    assert torch.equal(model.log_prob(x), plain.log_prob(x))


def test_negative_augmented_channels_are_refused():
    with pytest.raises(ValueError, match="augment_channels"):
        build_vflow(SHAPE, image={**IMAGE, "augment_channels": -1})


def test_cli_run_on_digits_reports_the_bound_and_the_estimate(run_cli, tmp_path):
    run = run_cli(tmp_path / "run", *DIGITS_TINY)
    assert run.code == 0, run.err
    metrics = run.metrics
    assert metrics["exact"] is False and metrics["is_samples"] == 4
    numbers = [v for v in metrics.values() if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers)
