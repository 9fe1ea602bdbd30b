import torch
from torch import nn

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.linear import LULinear, RandomPermutation, ReversePermutation


def test_lu_linear_starts_as_identity():
    layer = LULinear(4)
    x = torch.randn(5, 4)
    z, logdet = layer(x)
    assert torch.allclose(z, x, atol=1e-6)
    assert logdet.abs().max() < 1e-6


def test_lu_linear_random_parameters():
    torch.manual_seed(0)
    layer = LULinear(5).double()
    with torch.no_grad():
        for p in layer.parameters():
            nn.init.normal_(p, std=0.5)
    x = torch.randn(7, 5, dtype=torch.float64)
    z, logdet = layer(x)
    assert logdet.shape == (7,)
    assert (z - x).abs().max() > 1e-2
    assert roundtrip_max_abs_err(layer, x) < 1e-10
    assert logdet_max_abs_err(layer, x) < 1e-10
    weight = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    assert torch.allclose(logdet, torch.linalg.slogdet(weight)[1].expand(7))


def test_lu_linear_float32_roundtrip():
    torch.manual_seed(1)
    layer = LULinear(6)
    with torch.no_grad():
        for p in layer.parameters():
            nn.init.normal_(p, std=0.3)
    x = torch.randn(16, 6)
    assert roundtrip_max_abs_err(layer, x) < 1e-4
    assert logdet_max_abs_err(layer, x) < 1e-4


def test_random_permutation_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = RandomPermutation(8, seed=0), RandomPermutation(8, seed=0), RandomPermutation(8, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.permutation, b.permutation)
    assert not torch.equal(a.permutation, c.permutation)
    assert sorted(a.permutation.tolist()) == list(range(8))
    assert "permutation" in a.state_dict()


def test_permutations_roundtrip_with_zero_logdet():
    x = torch.randn(4, 6)
    for layer in (RandomPermutation(6, seed=3), ReversePermutation(6)):
        z, logdet = layer(x)
        assert torch.equal(logdet, torch.zeros(4))
        assert torch.equal(torch.sort(z, dim=1).values, torch.sort(x, dim=1).values)
        assert roundtrip_max_abs_err(layer, x) == 0.0
    assert torch.equal(ReversePermutation(6)(x)[0], x.flip(1))


def test_permutation_acts_on_image_channels():
    x = torch.randn(2, 3, 4, 4)
    z, logdet = ReversePermutation(3)(x)
    assert torch.equal(z, x.flip(1))
    assert logdet.shape == (2,)
