"""Squeeze, Unsqueeze and Flatten: exact rearrangements with log-det 0."""
import pytest
import torch

from funnelrun.transforms.flatten import Flatten
from funnelrun.transforms.squeeze import Squeeze, Unsqueeze, squeezed_shape

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 8, 8), (2, 2, 6)])
def test_squeeze_roundtrip_shape_and_zero_logdet(shape):
    x = torch.randn(5, *shape)
    z, logdet = Squeeze()(x)
    assert z.shape == (5, *squeezed_shape(shape))
    assert torch.equal(logdet, torch.zeros(5))
    assert torch.equal(Squeeze().inverse(z), x)
    assert torch.equal(z.sort(dim=1).values.flatten(1).sort().values, x.flatten(1).sort().values)


def test_squeeze_layout_holds_each_patch_in_consecutive_channels():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z, _ = Squeeze()(x)
    # channel 2i + j holds offset (i, j) of each 2 x 2 patch
    assert z[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    assert z[0, :, 1, 1].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_squeeze_refuses_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.randn(2, 1, 7, 8))


def test_flatten_roundtrip_and_features():
    layer = Flatten((2, 3, 4))
    x = torch.randn(6, 2, 3, 4)
    z, logdet = layer(x)
    assert z.shape == (6, 24) and torch.equal(logdet, torch.zeros(6))
    assert torch.equal(layer.inverse(z), x)
    assert layer.out_features(24) == 24
    with pytest.raises(ValueError):
        layer.out_features(25)


def test_unsqueeze_is_the_inverse_of_squeeze():
    x = torch.randn(3, 8, 2, 4)
    y, logdet = Unsqueeze()(x)
    assert y.shape == (3, 2, 4, 8) and torch.equal(logdet, torch.zeros(3))
    assert torch.equal(Squeeze()(y)[0], x) and torch.equal(Unsqueeze().inverse(y), x)
    with pytest.raises(ValueError, match="multiple of 4 channels"):
        Unsqueeze()(torch.randn(1, 6, 2, 2))
