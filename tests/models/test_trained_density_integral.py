"""After a few hundred training steps, a 2-D -> 1-D F-NSF and an NSF each integrate to 1 on a grid."""
from __future__ import annotations

import pytest
import torch

from funnelrun.data.plane import four_circles
from funnelrun.evaluation.exactness import density_integral_2d
from funnelrun.models.f_nsf import build_f_nsf
from funnelrun.models.nsf import build_nsf

ARCH = dict(num_steps=2, transform="autoregressive", hidden_features=32, num_blocks=1, num_bins=8, tail_bound=4.0)


def _train(model, steps=300, batch=256, seed=0):
    torch.manual_seed(seed)
    data = four_circles(steps * batch, torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for i in range(steps):
        loss = -model.log_prob(data[i * batch : (i + 1) * batch]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    model.eval()
    return first, loss.item()


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_nsf((2,), **ARCH),
        lambda: build_f_nsf((2,), latent_dim=1, funnel_level=1, conditional_steps=2, conditional_hidden_features=16, **ARCH),
    ],
    ids=["nsf", "f_nsf_2d_to_1d"],
)
def test_trained_density_integrates_to_one(build):
    model = build()
    first, last = _train(model)
    assert last < first - 0.5  # it learned something: the check is not of an untouched model
    integral = density_integral_2d(model.log_prob, (-7.0, -7.0), (7.0, 7.0), points_per_axis=400)
    assert integral == pytest.approx(1.0, abs=0.01)
