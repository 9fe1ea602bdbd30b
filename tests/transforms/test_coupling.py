import pytest
import torch
from torch import nn

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling, alternating_mask

SMALL = dict(hidden_features=8, num_blocks=1)
LAYERS = {
    "spline": lambda features, mask, ctx: RQSplineCoupling(features, mask, ctx, num_bins=4, **SMALL),
    "affine": lambda features, mask, ctx: AffineCoupling(features, mask, ctx, **SMALL),
}


def randomize_(module: nn.Module, std: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            nn.init.normal_(p, std=std)


def make(kind, features, mask, context_features, seed=0):
    torch.manual_seed(seed)
    layer = LAYERS[kind](features, mask, context_features).double()
    randomize_(layer, std=0.5)
    x = torch.randn(6, features, dtype=torch.float64) * 2
    context = (
        None if context_features is None else torch.randn(6, context_features, dtype=torch.float64)
    )
    return layer, x, context


def test_alternating_mask():
    assert alternating_mask(5, even=True).tolist() == [1, 0, 1, 0, 1]
    assert alternating_mask(5, even=False).tolist() == [0, 1, 0, 1, 0]


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("context_features", [None, 3])
@pytest.mark.parametrize("mask", [[1, 0, 1, 0, 1], [0, 1, 1], [1, 1, 0, 0]])
def test_roundtrip_and_logdet(kind, context_features, mask):
    layer, x, context = make(kind, len(mask), mask, context_features)
    z, _ = layer(x, context)
    fixed = torch.tensor(mask) == 0
    assert torch.equal(z[:, fixed], x[:, fixed])
    assert (z[:, ~fixed] - x[:, ~fixed]).abs().max() > 1e-2  # random parameters, not the identity
    assert roundtrip_max_abs_err(layer, x, context) < 1e-10
    assert logdet_max_abs_err(layer, x, context) < 1e-8


@pytest.mark.parametrize("kind", LAYERS)
def test_float32_roundtrip(kind):
    torch.manual_seed(0)
    layer = LAYERS[kind](4, alternating_mask(4, even=False), 2)
    # Moderate parameters: with slopes near 1e-6 no float32 inverse can be accurate.
    randomize_(layer, std=0.25)
    x, context = torch.randn(32, 4) * 2, torch.randn(32, 2)
    assert roundtrip_max_abs_err(layer, x, context) < 1e-4


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("context_features", [None, 2])
def test_single_feature_conditioned_on_context_only(kind, context_features):
    layer, x, context = make(kind, 1, [1], context_features, seed=1)
    assert roundtrip_max_abs_err(layer, x, context) < 1e-10
    assert logdet_max_abs_err(layer, x, context) < 1e-8
    z, _ = layer(x, context)
    if context_features is None:
        # A learned constant: the same map for every example.
        z_again, _ = layer(x.flip(0))
        assert torch.allclose(z_again, z.flip(0))
    else:
        z_other, _ = layer(x, context + 1)
        assert (z_other - z).abs().max() > 1e-3


def test_spline_coupling_starts_as_identity():
    layer = RQSplineCoupling(3, [1, 0, 1], context_features=2, hidden_features=8)
    x = torch.randn(10, 3) * 2
    z, logdet = layer(x, torch.randn(10, 2))
    assert (z - x).abs().max() < 1e-5
    assert logdet.abs().max() < 1e-5


def test_affine_coupling_starts_with_glow_scale():
    layer = AffineCoupling(2, [0, 1], hidden_features=8)
    x = torch.randn(10, 2)
    z, logdet = layer(x)
    scale = torch.sigmoid(torch.tensor(2.0)) + 1e-3
    assert torch.allclose(z[:, 1], x[:, 1] * scale)
    assert torch.allclose(logdet, scale.log().expand(10))


def test_spline_coupling_with_batch_norm_in_eval_mode():
    torch.manual_seed(0)
    layer = RQSplineCoupling(
        3, [1, 0, 1], hidden_features=8, num_blocks=1, num_bins=4, use_batch_norm=True
    ).double()
    randomize_(layer, std=0.5)
    x = torch.randn(6, 3, dtype=torch.float64)
    layer(x)  # update the running statistics
    layer.eval()
    assert (layer(x)[0] - x).abs().max() > 1e-2
    assert roundtrip_max_abs_err(layer, x) < 1e-10
    assert logdet_max_abs_err(layer, x) < 1e-8


@pytest.mark.parametrize("mask", [[0, 0, 0], [1, 2, 0], [1, 0]])
def test_rejects_bad_masks(mask):
    with pytest.raises(ValueError):
        RQSplineCoupling(3, mask)


@pytest.mark.parametrize("context_features", [None, 3])
@pytest.mark.parametrize("mask", [[1, 0, 1, 0, 1], [0, 1, 1], [0, 0, 1, 1]])
def test_unconditional_spline_on_the_identity_features_is_exact(context_features, mask):
    """NSF's unconditional transform: the identity features are mapped too, elementwise, after the
    conditioner read them; the round trip and the log-det (against autograd) stay exact."""
    torch.manual_seed(0)
    layer = RQSplineCoupling(len(mask), mask, context_features, num_bins=4, unconditional=True, **SMALL).double()
    randomize_(layer, std=0.5)
    x = torch.randn(6, len(mask), dtype=torch.float64) * 2
    context = None if context_features is None else torch.randn(6, context_features, dtype=torch.float64)
    z, _ = layer(x, context)
    fixed = torch.tensor(mask) == 0
    assert (z[:, fixed] - x[:, fixed]).abs().max() > 1e-2  # the identity features move now
    assert layer.unconditional.params.shape == (int(fixed.sum()), 3 * 4 - 1)  # knots per feature
    assert roundtrip_max_abs_err(layer, x, context) < 1e-8  # two splines of random knots in float64
    assert logdet_max_abs_err(layer, x, context) < 1e-8
    # the transformed features are those of the same layer without the unconditional spline
    plain = RQSplineCoupling(len(mask), mask, context_features, num_bins=4, **SMALL).double()
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if not k.startswith("unconditional.")})
    assert torch.allclose(plain(x, context)[0][:, ~fixed], z[:, ~fixed])


def test_unconditional_spline_starts_as_the_identity():
    layer = RQSplineCoupling(4, [1, 0, 1, 0], unconditional=True, **SMALL)
    x = torch.randn(8, 4)
    z, logdet = layer(x)
    assert torch.allclose(z, x, atol=1e-5) and torch.allclose(logdet, torch.zeros(8), atol=1e-5)


@pytest.mark.parametrize("mask", [[0, 0, 1, 1, 1], [1, 0, 1, 0, 1]], ids=["identity-first", "alternating"])
@pytest.mark.parametrize("unconditional", [False, True])
def test_forward_parts_are_the_forward_unjoined(mask, unconditional):
    """What a funnel reads (z_A, z_B, log-det without joining z) is the forward's; the identity-first
    mask (a funnel's) splits by views."""
    torch.manual_seed(0)
    layer = RQSplineCoupling(5, mask, hidden_features=8, num_bins=4, unconditional=unconditional)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert (layer.split_at is not None) == (mask == [0, 0, 1, 1, 1])
    x = torch.randn(7, 5)
    z, logdet = layer(x)
    z_identity, z_transform, logdet_parts = layer.forward_parts(x)
    torch.testing.assert_close(layer.join(z_identity, z_transform), z, rtol=0, atol=0)
    torch.testing.assert_close(logdet_parts, logdet, rtol=0, atol=0)
    torch.testing.assert_close(layer.inverse(z), x, atol=1e-5, rtol=0)
