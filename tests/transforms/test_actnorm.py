import pytest
import torch

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.actnorm import ActNorm


def test_data_dependent_init_on_vectors():
    torch.manual_seed(0)
    layer = ActNorm(3)
    x = torch.randn(64, 3) * torch.tensor([0.1, 2.0, 5.0]) + torch.tensor([3.0, -1.0, 0.5])
    z, _ = layer(x)
    assert bool(layer.initialized)
    assert z.mean(0).abs().max() < 1e-5
    assert (z.std(0) - 1).abs().max() < 1e-4
    # Later batches no longer re-initialise.
    z2, _ = layer(x * 3)
    assert (z2.std(0) - 3).abs().max() < 1e-3


def test_data_dependent_init_on_images_per_channel():
    torch.manual_seed(0)
    layer = ActNorm(2)
    x = torch.randn(8, 2, 3, 3) * torch.tensor([0.5, 4.0]).view(1, 2, 1, 1) + 1.0
    z, logdet = layer(x)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (z.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-4
    assert torch.allclose(logdet, 9 * layer.log_scale.sum().expand(8))


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 2, 3)])
def test_roundtrip_and_logdet_after_init(shape):
    torch.manual_seed(0)
    layer = ActNorm(shape[1]).double()
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    layer(x)
    layer.eval()
    assert layer.log_scale.abs().max() > 0.1  # initialised away from the identity
    assert roundtrip_max_abs_err(layer, x) < 1e-12
    assert logdet_max_abs_err(layer, x) < 1e-10


def test_initialized_flag_survives_reload():
    layer = ActNorm(2)
    layer(torch.randn(10, 2) * 4)
    reloaded = ActNorm(2)
    reloaded.load_state_dict(layer.state_dict())
    assert bool(reloaded.initialized)
    x = torch.randn(10, 2)
    assert torch.equal(reloaded(x)[0], layer(x)[0])


def test_loading_an_uninitialised_state_initialises_again():
    """forward keeps a host-side copy of the flag; a loaded state decides it afresh."""
    layer = ActNorm(2)
    layer(torch.randn(10, 2) * 4)
    layer.load_state_dict(ActNorm(2).state_dict())
    assert not bool(layer.initialized)
    x = torch.randn(50, 2) * 3 + 1
    z, _ = layer(x)
    assert bool(layer.initialized)
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(z.std(0), torch.ones(2), atol=1e-4)


def test_no_init_in_eval_mode():
    layer = ActNorm(2).eval()
    x = torch.randn(4, 2) * 5
    z, logdet = layer(x)
    assert torch.equal(z, x) and not bool(layer.initialized)
    assert torch.equal(logdet, torch.zeros(4))


def test_init_needs_more_than_one_value_per_feature():
    with pytest.raises(ValueError):
        ActNorm(3)(torch.randn(1, 3))
