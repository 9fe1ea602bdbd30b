"""The multi-scale composite: flat latent, factor-out bookkeeping, round trip and log-det."""
import math

import pytest
import torch

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.conv1x1 import Conv1x1
from funnelrun.transforms.image_coupling import ImageAffineCoupling
from funnelrun.transforms.multiscale import MultiScale
from funnelrun.transforms.squeeze import Squeeze, squeezed_shape

pytestmark = pytest.mark.usefixtures("one_thread")


def squeeze_level(shape, index):
    """Squeeze -> 1 x 1 convolution -> affine channel coupling."""
    shape = squeezed_shape(shape)
    coupling = ImageAffineCoupling(shape, "channel", index % 2 == 0, hidden_channels=4, num_blocks=1,
                                   use_batch_norm=False)
    return CompositeTransform([Squeeze(), Conv1x1(shape[0], seed=index), coupling]), shape


def _randomised(shape, levels, factor_out):
    torch.manual_seed(0)
    model = MultiScale(shape, levels, squeeze_level, factor_out).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.mark.parametrize("shape,levels", [((3, 4, 4), 2), ((1, 8, 8), 3)])
@pytest.mark.parametrize("factor_out", [True, False])
def test_flat_latent_roundtrip_and_logdet(shape, levels, factor_out):
    model = _randomised(shape, levels, factor_out)
    x = torch.randn(3, *shape, dtype=torch.float64)
    z, _ = model(x)
    assert z.shape == (3, math.prod(shape)) and model.out_features(math.prod(shape)) == math.prod(shape)
    assert model.bijective and model.exact
    assert roundtrip_max_abs_err(model, x) < 1e-9
    assert logdet_max_abs_err(model, x) < 1e-9


def test_factored_channels_leave_first_and_skip_later_levels():
    model = _randomised((1, 8, 8), 3, factor_out=True)
    assert model.factored_shapes == [(2, 4, 4), (4, 2, 2)] and model.final_shape == (16, 1, 1)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        z, _ = model(x)
        first_level, _ = model.levels[0](x)
    assert torch.equal(z[:, :32], first_level[:, :2].flatten(1))


def test_without_factor_out_every_level_sees_every_dimension():
    model = _randomised((3, 4, 4), 2, factor_out=False)
    assert model.factored_shapes == [] and model.final_shape == (48, 1, 1)


def test_wrong_input_size_fails():
    with pytest.raises(ValueError, match="got 47 features"):
        _randomised((3, 4, 4), 2, True).out_features(47)
