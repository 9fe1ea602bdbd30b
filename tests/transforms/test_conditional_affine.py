import math

import pytest
import torch

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.conditional_affine import ConditionalAffine


def _randomised(features: int = 3, context: int = 2) -> ConditionalAffine:
    torch.manual_seed(0)
    layer = ConditionalAffine(features, context, hidden_features=8).double()
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return layer


def test_starts_as_the_identity_for_every_context():
    layer = ConditionalAffine(3, 2)
    x, c = torch.randn(5, 3), torch.randn(5, 2)
    z, logdet = layer(x, c)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(5))


def test_roundtrip_and_logdet_against_autograd():
    layer = _randomised()
    x, c = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    assert roundtrip_max_abs_err(layer, x, c) < 1e-12
    assert logdet_max_abs_err(layer, x, c) < 1e-10


def test_after_a_standard_normal_it_is_the_conditional_gaussian():
    layer = _randomised(features=1, context=1)
    c = torch.tensor([[0.3]], dtype=torch.float64)
    mean, log_sigma = layer._params(c)
    x = torch.tensor([[1.7]], dtype=torch.float64)
    z, logdet = layer(x, c)
    log_p = -0.5 * z.pow(2).sum() - 0.5 * math.log(2 * math.pi) + logdet
    expected = torch.distributions.Normal(mean, log_sigma.exp()).log_prob(x).sum()
    assert log_p.item() == pytest.approx(expected.item(), abs=1e-12)


def test_needs_a_context():
    with pytest.raises(ValueError, match="context"):
        ConditionalAffine(2, 2)(torch.randn(3, 2))
