"""Image couplings (channel and checkerboard masks, RQ spline and affine): round trip, log-det,
which elements change, identity at initialisation."""
import pytest
import torch

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.image_coupling import ImageAffineCoupling, ImageRQSplineCoupling

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(hidden_channels=8, num_blocks=1, dropout=0.1, use_batch_norm=True)
LAYERS = {
    "spline": lambda shape, mask, parity: ImageRQSplineCoupling(
        shape, mask, parity, num_bins=4, tail_bound=2.0, **SMALL
    ),
    "affine": lambda shape, mask, parity: ImageAffineCoupling(shape, mask, parity, **SMALL),
}
CASES = [((3, 4, 4), "channel"), ((3, 4, 4), "checkerboard"), ((1, 8, 8), "checkerboard"), ((4, 2, 3), "channel")]


def _randomised(kind, shape, mask, parity, seed=0):
    torch.manual_seed(seed)
    layer = LAYERS[kind](shape, mask, parity).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return layer.eval()


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("shape,mask", CASES)
@pytest.mark.parametrize("parity", [True, False])
def test_roundtrip_and_logdet_against_autograd(kind, shape, mask, parity):
    layer = _randomised(kind, shape, mask, parity)
    x = torch.randn(3, *shape, dtype=torch.float64) * 1.5
    assert roundtrip_max_abs_err(layer, x) < 1e-10
    assert logdet_max_abs_err(layer, x) < 1e-9


@pytest.mark.parametrize("kind", LAYERS)
def test_channel_mask_keeps_the_identity_channels(kind):
    layer = _randomised(kind, (3, 4, 4), "channel", parity=True)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    z, _ = layer(x)
    assert torch.equal(z[:, 2], x[:, 2])  # parity True transforms the first ceil(3 / 2) = 2 channels
    assert (z[:, :2] - x[:, :2]).abs().max() > 1e-2


@pytest.mark.parametrize("parity", [True, False])
def test_checkerboard_mask_keeps_the_other_pixels(parity):
    layer = _randomised("spline", (2, 4, 4), "checkerboard", parity)
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64) * 2 - 1  # inside the tail bound 2
    z, _ = layer(x)
    rows, columns = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    transformed = (rows + columns) % 2 == (0 if parity else 1)
    assert torch.equal(z[:, :, ~transformed], x[:, :, ~transformed])
    assert (z[:, :, transformed] - x[:, :, transformed]).abs().min() > 0


@pytest.mark.parametrize("kind", LAYERS)
def test_starts_as_identity_for_the_spline_and_as_a_fixed_scale_for_affine(kind):
    torch.manual_seed(0)
    layer = LAYERS[kind]((3, 4, 4), "channel", True).eval()
    x = torch.randn(2, 3, 4, 4)
    z, logdet = layer(x)
    if kind == "spline":
        assert torch.allclose(z, x, atol=1e-5) and logdet.abs().max() < 1e-4
    else:  # Glow's s = sigmoid(2) + 1e-3 on the transformed channels
        assert torch.allclose(z[:, :2], x[:, :2] * (torch.sigmoid(torch.tensor(2.0)) + 1e-3), atol=1e-5)


def test_single_channel_needs_a_checkerboard():
    with pytest.raises(ValueError, match="checkerboard"):
        ImageRQSplineCoupling((1, 4, 4), "channel")
