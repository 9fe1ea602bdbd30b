import pytest
import torch
from torch import nn

from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.transforms.autoregressive import RQSplineAutoregressive


def randomize_(module: nn.Module, std: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            nn.init.normal_(p, std=std)


def make(features, context_features, std=0.5, dtype=torch.float64):
    torch.manual_seed(features)
    layer = RQSplineAutoregressive(
        features, context_features, hidden_features=12, num_blocks=1, num_bins=4
    ).to(dtype)
    randomize_(layer, std=std)
    x = torch.randn(6, features, dtype=dtype) * 2
    context = None if context_features is None else torch.randn(6, context_features, dtype=dtype)
    return layer, x, context


@pytest.mark.parametrize("features", [1, 2, 5])
@pytest.mark.parametrize("context_features", [None, 3])
def test_roundtrip_and_logdet(features, context_features):
    layer, x, context = make(features, context_features)
    z, _ = layer(x, context)
    assert (z - x).abs().max() > 1e-2  # random parameters, not the identity
    # std 0.5 weights give unnormalised spline parameters up to ~20 (near-flat bins), whose
    # inverse error grows along the autoregressive chain; float64 keeps it small.
    assert roundtrip_max_abs_err(layer, x, context) < 1e-7
    assert logdet_max_abs_err(layer, x, context) < 1e-8


def test_float32_roundtrip():
    layer, x, context = make(4, 2, std=0.25, dtype=torch.float32)
    assert roundtrip_max_abs_err(layer, x, context) < 1e-4


def test_jacobian_is_lower_triangular():
    layer, x, context = make(4, 2)
    jac = torch.autograd.functional.jacobian(lambda xi: layer(xi[None], context[:1])[0][0], x[0])
    assert torch.equal(jac.triu(1), torch.zeros_like(jac))
    assert (jac.tril(-1).abs() > 0).sum() > 0


def test_first_feature_depends_on_context():
    layer, x, context = make(3, 2)
    z, _ = layer(x, context)
    z_other, _ = layer(x, context + 1)
    assert (z_other[:, 0] - z[:, 0]).abs().max() > 1e-3


def test_starts_as_identity():
    layer = RQSplineAutoregressive(3, context_features=2, hidden_features=8)
    x = torch.randn(10, 3) * 2
    z, logdet = layer(x, torch.randn(10, 2))
    assert (z - x).abs().max() < 1e-5
    assert logdet.abs().max() < 1e-5


@pytest.mark.parametrize("context_features", [None, 3])
def test_inverse_matches_the_full_pass_recurrence(context_features):
    """The inversion computes one feature per pass; the textbook recurrence (D passes of the whole
    layer, x <- spline^-1(z; MADE(x))) gives the same x."""
    layer, x, context = make(5, context_features)
    z, _ = layer(x, context)
    reference = torch.zeros_like(z)
    for _ in range(5):
        reference = layer._spline(z, reference, context, inverse=True)[0]
    assert torch.allclose(layer.inverse(z, context), reference, atol=1e-12)
