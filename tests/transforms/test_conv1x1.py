"""The invertible 1 x 1 convolution: round trip and log-det = H * W * log|det W| (Glow Sec. 3.2)."""
import pytest
import torch
import torch.nn.functional as F

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.conv1x1 import Conv1x1

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomised(channels: int, seed: int = 0) -> Conv1x1:
    torch.manual_seed(seed)
    layer = Conv1x1(channels, seed=seed).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return layer


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 8, 8), (4, 2, 3)])
def test_roundtrip_and_logdet_against_autograd(shape):
    layer = _randomised(shape[0])
    x = torch.randn(4, *shape, dtype=torch.float64)
    assert roundtrip_max_abs_err(layer, x) < 1e-10
    assert logdet_max_abs_err(layer, x) < 1e-9


def test_is_a_1x1_convolution_with_glow_logdet():
    layer = _randomised(3)
    with torch.no_grad():
        bias = layer(torch.zeros(1, 3, 1, 1, dtype=torch.float64))[0].reshape(3)
        weight = (layer(torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1))[0].reshape(3, 3) - bias).T
        x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        z, logdet = layer(x)
    assert torch.allclose(z, F.conv2d(x, weight.view(3, 3, 1, 1), bias), atol=1e-12)
    assert torch.allclose(logdet, 4 * 5 * torch.linalg.slogdet(weight)[1].expand(2))
