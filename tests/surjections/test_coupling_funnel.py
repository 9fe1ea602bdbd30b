"""The coupling funnel (eq. 6 with F a coupling over all D features whose identity features are
dropped, the funnels authors' UCI layer): right inverse, the contribution's decomposition, the
density of a 2-D -> 1-D one integrating to 1."""
from __future__ import annotations

import math

import pytest
import torch

from funnelrun.distributions.conditional import ConditionalDiagonalGaussian, ConditionalFlow
from funnelrun.evaluation.certificate import certify
from funnelrun.evaluation.exactness import autograd_logdet, density_integral_2d, roundtrip_max_abs_err
from funnelrun.models.flow import Flow
from funnelrun.models.nsf import flow_steps
from funnelrun.surjections.coupling_funnel import CouplingFunnel, dropped_first_mask
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling

pytestmark = pytest.mark.usefixtures("one_thread")
SPLINE = dict(hidden_features=16, num_blocks=1, num_bins=5, tail_bound=3.0)


def make(features: int, dropped: int, kind: str, conditional: str, std: float = 0.3) -> CouplingFunnel:
    torch.manual_seed(0)
    kept = features - dropped
    mask = dropped_first_mask(features, dropped)
    if kind == "affine":
        coupling = AffineCoupling(features, mask, hidden_features=16, num_blocks=1)
    else:
        coupling = RQSplineCoupling(features, mask, unconditional=kind == "unconditional", **SPLINE)
    if conditional == "gaussian":
        p_dropped = ConditionalDiagonalGaussian(dropped, context_features=kept, hidden_features=16)
    else:
        p_dropped = ConditionalFlow(dropped, CompositeTransform(
            flow_steps(2, dropped, kind="coupling", context_features=kept, **SPLINE)))
    funnel = CouplingFunnel(coupling, p_dropped)
    with torch.no_grad():
        for p in funnel.parameters():
            p.normal_(0.0, std)
    return funnel.double().eval()


CASES = [(5, 2, "spline", "gaussian"), (6, 2, "unconditional", "flow"), (4, 1, "affine", "flow"),
         (7, 3, "affine", "gaussian")]


def test_mask_drops_the_first_coordinates():
    assert dropped_first_mask(5, 2).tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="between 1 and 4"):
        dropped_first_mask(5, 5)


@pytest.mark.parametrize("features,dropped,kind,conditional", CASES)
def test_right_inverse_and_shapes(features, dropped, kind, conditional):
    funnel = make(features, dropped, kind, conditional)
    assert funnel.out_features(features) == features - dropped and funnel.exact and not funnel.bijective
    z = torch.randn(64, features - dropped, dtype=torch.float64)
    x = funnel.inverse(z, temperature=0.7)
    assert x.shape == (64, features)
    z_again, _ = funnel(x)
    assert (z_again - z).abs().max() < 1e-9  # forward(inverse(z)) == z (funnels A.1)


@pytest.mark.parametrize("features,dropped,kind,conditional", CASES)
def test_contribution_is_log_p_dropped_plus_the_coupling_logdet(features, dropped, kind, conditional):
    """V(x) = log p_phi(y_A | z) + log|det dy/dx| with y = coupling(x), the log-det by autograd."""
    funnel = make(features, dropped, kind, conditional)
    x = torch.randn(8, features, dtype=torch.float64)
    z, contribution = funnel(x)
    with torch.no_grad():
        y, _ = funnel.coupling(x)
    assert torch.equal(z, y[:, dropped:])
    expected = funnel.conditional.log_prob(y[:, :dropped], z) + autograd_logdet(funnel.coupling, x)
    assert torch.allclose(contribution, expected, atol=1e-9)
    assert roundtrip_max_abs_err(funnel.coupling, x) < 1e-10


@pytest.mark.parametrize("kind", ["unconditional", "affine"])
def test_a_2d_to_1d_coupling_funnel_density_integrates_to_one(kind):
    """With a standard normal on z the funnel is a proper density on R^2 (exact, not a bound)."""
    funnel = make(2, 1, kind, "flow", std=0.2).float()

    def log_prob(x):
        z, contribution = funnel(x)
        return -0.5 * z.pow(2).sum(1) - 0.5 * math.log(2 * math.pi) + contribution

    integral = density_integral_2d(log_prob, (-10.0, -10.0), (10.0, 10.0), points_per_axis=500)
    assert integral == pytest.approx(1.0, abs=0.01)


def test_the_certificate_checks_a_coupling_funnel():
    funnel = make(6, 2, "unconditional", "flow")
    errs = certify(Flow([funnel], (6,)).double(), torch.randn(32, 6, dtype=torch.float64))
    assert errs["roundtrip_max_abs_err"] < 1e-9 and errs["logdet_max_abs_err"] < 1e-9
