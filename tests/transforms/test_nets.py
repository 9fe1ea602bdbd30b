import pytest
import torch
from torch import nn

from funnelrun.transforms.nets import MADE, ResidualNet


def randomize_(module: nn.Module, std: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            nn.init.normal_(p, std=std)


def made_jacobian(made: MADE, x: torch.Tensor, context=None) -> torch.Tensor:
    """|d out / d x| summed over examples, shaped (features, multiplier, features)."""
    total = 0
    for i in range(x.shape[0]):
        ctx = None if context is None else context[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda xi: made(xi[None], ctx)[0], x[i])
        total = total + jac.abs()
    return total.view(x.shape[1], -1, x.shape[1])


@pytest.mark.parametrize("context_features", [None, 3])
def test_residual_net_shapes_and_context(context_features):
    torch.manual_seed(0)
    net = ResidualNet(4, 7, hidden_features=16, context_features=context_features, num_blocks=2)
    randomize_(net, std=0.5)
    x = torch.randn(5, 4)
    context = None if context_features is None else torch.randn(5, context_features)
    out = net(x, context)
    assert out.shape == (5, 7)
    if context_features is not None:
        assert (net(x, context + 1) - out).abs().max() > 1e-3
        with pytest.raises(ValueError):
            net(x)


def test_residual_net_without_data_inputs_uses_context():
    net = ResidualNet(0, 3, hidden_features=8, context_features=2)
    randomize_(net, std=0.5)
    context = torch.randn(4, 2)
    out = net(torch.zeros(4, 0), context)
    assert out.shape == (4, 3)
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_residual_blocks_start_near_identity():
    net = ResidualNet(3, 2, hidden_features=8, num_blocks=2)
    for block in net.blocks:
        assert block.linear_1.weight.abs().max() <= 1e-3


@pytest.mark.parametrize("net_fn", [
    lambda: ResidualNet(3, 3, hidden_features=16, dropout=0.5),
    lambda: MADE(3, hidden_features=16, dropout=0.5),
])
def test_dropout_only_in_training(net_fn):
    torch.manual_seed(0)
    net = net_fn()
    randomize_(net, std=0.5)
    assert any(isinstance(m, nn.Dropout) for m in net.modules())
    x = torch.randn(16, 3)
    assert (net(x) - net(x)).abs().max() > 0
    net.eval()
    assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("features,multiplier", [(1, 3), (2, 1), (5, 4)])
@pytest.mark.parametrize("context_features", [None, 2])
def test_made_autoregressive_property(features, multiplier, context_features):
    torch.manual_seed(0)
    made = MADE(features, hidden_features=12, context_features=context_features,
                num_blocks=2, output_multiplier=multiplier)
    randomize_(made, std=0.5)
    x = torch.randn(6, features)
    context = None if context_features is None else torch.randn(6, context_features)
    assert made(x, context).shape == (6, features * multiplier)
    dependency = made_jacobian(made, x, context).sum(dim=1) > 0  # (output feature, input)
    strictly_lower = torch.ones(features, features).tril(-1).bool()
    assert torch.equal(dependency, strictly_lower)


def test_made_outputs_depend_on_context():
    torch.manual_seed(0)
    made = MADE(3, hidden_features=8, context_features=2, output_multiplier=2)
    randomize_(made, std=0.5)
    x = torch.randn(4, 3)
    context = torch.randn(4, 2)
    change = (made(x, context) - made(x, context + 1)).abs().view(4, 3, 2)
    assert (change.sum(dim=(0, 2)) > 1e-4).all()  # feature 0 included, despite no inputs


def test_made_batch_norm_runs_in_both_modes():
    made = MADE(3, hidden_features=8, use_batch_norm=True)
    x = torch.randn(10, 3)
    assert made(x).shape == (10, 3)
    made.eval()
    assert made(x[:1]).shape == (1, 3)


def test_conv_residual_net_shapes_batch_norm_and_near_identity_blocks():
    from funnelrun.transforms.nets import ConvResidualNet

    torch.manual_seed(0)
    net = ConvResidualNet(3, 10, hidden_channels=8, num_blocks=2, dropout=0.2, use_batch_norm=True)
    x = torch.randn(4, 3, 5, 6)
    assert net(x).shape == (4, 10, 5, 6)
    net.eval()
    assert net(x[:1]).shape == (1, 10, 5, 6)
    h = net.initial_layer(x)
    assert (net.blocks(h) - h).abs().max() < 0.1  # each block's last convolution starts near zero


@pytest.mark.parametrize(
    "features, hidden, context_features, use_batch_norm",
    [(5, 12, None, False), (5, 12, 2, False), (1, 4, None, False), (1, 4, 2, False), (6, 40, None, False),
     (5, 12, None, True), (5, 12, 2, True)],
)
def test_made_one_feature_and_frozen_masks_give_the_same_outputs(
    features, hidden, context_features, use_batch_norm
):
    """What the autoregressive inversion uses: feature i's outputs alone, from masked weights formed
    once; without batch norm, from the degree-sorted prefixes of hidden units (fewer of them for
    early features), with it, from all units."""
    torch.manual_seed(0)
    made = MADE(features, hidden_features=hidden, context_features=context_features, num_blocks=2,
                output_multiplier=3, use_batch_norm=use_batch_norm)
    randomize_(made, std=0.5)
    made = made.double().eval()
    x = torch.randn(6, features, dtype=torch.float64)
    context = None if context_features is None else torch.randn(6, context_features, dtype=torch.float64)
    full = made(x, context)
    with made.masks_frozen():
        assert (made._sorted is None) == use_batch_norm
        for i in range(features):
            assert torch.allclose(made(x, context, feature=i), full[:, 3 * i : 3 * i + 3], atol=1e-12)
        weight = made.final_layer.weight
        loss = made(x, context, feature=features - 1).sum()
    assert made._sorted is None
    assert all(m.frozen_weight is None for m in made.modules() if hasattr(m, "frozen_weight"))
    loss.backward()  # gradients reach the weights through the frozen (masked) copies
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    assert torch.equal(weight.grad != 0, (made.final_layer.mask != 0) & (weight.grad != 0))


def test_made_feature_passes_use_only_the_hidden_units_of_lower_degree():
    """Feature i's pass reads hidden units of degree <= i alone (a prefix after sorting): for 6
    features and 40 units, degrees cycle over 1..5, so 0, 8, 16, 24, 32 and 40 units."""
    made = MADE(6, hidden_features=40, num_blocks=1)
    assert made.units_for_feature == [0, 8, 16, 24, 32, 40]
    assert MADE(6, hidden_features=40, context_features=1).units_for_feature == [7, 14, 21, 28, 34, 40]
    assert "hidden_order" not in made.state_dict()  # checkpoints keep their keys
