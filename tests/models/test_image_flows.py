"""Image models (funnels paper A.8, A.9, Table 2): every builder on (3, 8, 8) and (1, 28, 28) with
tiny settings: finite log_prob, samples of the data shape, the latent size, gradients, exactness."""
from __future__ import annotations

import math

import pytest
import torch

from funnelrun.evaluation.exactness import logdet_max_abs_err
from funnelrun.models.f_mlp import build_f_mlp
from funnelrun.models.f_nsf import build_f_nsf
from funnelrun.models.glow import build_f_glow, build_glow, build_realnvp
from funnelrun.models.image_f_nsf import funnel_output_shapes
from funnelrun.models.nsf import build_nsf
from funnelrun.surjections.conv_funnel import ConvFunnel
from funnelrun.surjections.maxpool import MaxPool

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(levels=2, steps_per_level=1, hidden_channels=4, num_res_blocks=1, num_bins=3,
            conditional_hidden_features=8)
BUILDERS = {
    "nsf": lambda shape, **kw: build_nsf(shape, **kw),
    "glow": lambda shape, **kw: build_glow(shape, **kw),
    "realnvp": lambda shape, **kw: build_realnvp(shape, **kw),
    "f_nsf": lambda shape, **kw: build_f_nsf(shape, **kw),
    "f_nsf_maxpool": lambda shape, image, **kw: build_f_nsf(shape, image=dict(image, funnel="maxpool"), **kw),
    "f_nsf_interleaved": lambda shape, image, **kw: build_f_nsf(shape, image=dict(image, funnel_layout="interleaved"),
                                                               **kw),
    "f_glow": lambda shape, **kw: build_f_glow(shape, latent_dim=None, **kw),
    "f_mlp": lambda shape, image: build_f_mlp(shape, latent_dim=4, widths=[32, 16, 4], num_bins=5, tail_bound=4.0),
}
#: latent sizes: dimension-preserving, or two funnels (a sixteenth), or the F-MLP's 4
LATENT = {"nsf": 1, "glow": 1, "realnvp": 1, "f_nsf": 1 / 16, "f_nsf_maxpool": 1 / 16, "f_nsf_interleaved": 1 / 16,
          "f_glow": 1 / 16}


def _randomise(model, std=0.05):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 28, 28)])
@pytest.mark.parametrize("name", BUILDERS)
def test_builds_scores_samples_and_trains(name, shape):
    torch.manual_seed(0)
    model = BUILDERS[name](shape, image=TINY)
    expected = 4 if name == "f_mlp" else round(math.prod(shape) * LATENT[name])
    assert model.latent_dim == expected and model.exact
    x = torch.randn(4, *shape)
    log_p = model.log_prob(x)  # training mode: ActNorm initialises, batch norm on the batch
    assert log_p.shape == (4,) and torch.isfinite(log_p).all()
    (-log_p.mean()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    model.eval()
    assert torch.isfinite(model.log_prob(x)).all()
    assert model.sample(3).shape == (3, *shape)


@pytest.mark.parametrize("name", ["nsf", "glow", "realnvp"])
def test_bijective_models_roundtrip(name):
    torch.manual_seed(0)
    model = BUILDERS[name]((3, 8, 8), image=dict(TINY, factor_out=True)).double().eval()
    _randomise(model)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        z, _ = model.transform(x)
        assert torch.allclose(model.transform.inverse(z), x, atol=1e-8)


@pytest.mark.parametrize("name", ["nsf", "realnvp"])
@pytest.mark.parametrize("factor_out", [True, False])
def test_bijective_models_logdet_matches_autograd(name, factor_out):
    torch.manual_seed(0)
    model = BUILDERS[name]((3, 4, 4), image=dict(TINY, factor_out=factor_out)).double().eval()
    _randomise(model)
    assert logdet_max_abs_err(model.transform, torch.randn(2, 3, 4, 4, dtype=torch.float64)) < 1e-8


@pytest.mark.parametrize("funnel,layout", [("conv", "first_step"), ("maxpool", "first_step"), ("conv", "interleaved")])
def test_funnel_models_satisfy_the_right_inverse_condition(funnel, layout):
    torch.manual_seed(0)
    model = build_f_nsf((3, 8, 8), image=dict(TINY, funnel=funnel, funnel_layout=layout)).double().eval()
    _randomise(model)
    z = torch.randn(5, model.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model.transform(model.transform.inverse(z))[0], z, atol=1e-8)


def test_cifar10_f_nsf_default_latent_is_192():
    model = build_f_nsf((3, 32, 32), image=dict(TINY, hidden_channels=2))
    assert model.latent_dim == 192
    assert sum(isinstance(t, ConvFunnel) for t in model.transform.transforms) == 2


@pytest.mark.parametrize("latent_dim,funnels", [(196, 1), (49, 2), (16, 3), (4, 4)])
def test_mnist_latent_dim_picks_the_number_of_funnels(latent_dim, funnels):
    """A.9: three funnels give 16 and four give 4, with 7 x 7 zero-padded to 8 x 8."""
    model = build_f_nsf((1, 28, 28), latent_dim=latent_dim, image=TINY)
    assert model.latent_dim == latent_dim
    assert sum(isinstance(t, ConvFunnel) for t in model.transform.transforms) == funnels


def test_maxpool_funnels_and_dim_reduction():
    model = build_f_nsf((1, 28, 28), dim_reduction=784 - 196, image=dict(TINY, funnel="maxpool"))
    assert model.latent_dim == 196 and any(isinstance(t, MaxPool) for t in model.transform.transforms)
    assert [math.prod(s) for s in funnel_output_shapes((1, 28, 28), "maxpool")] == [196, 49]


def test_unreachable_latent_dim_lists_the_reachable_sizes():
    with pytest.raises(ValueError, match=r"reachable sizes are \[196, 49, 16, 4\]"):
        build_f_nsf((1, 28, 28), latent_dim=10, image=TINY)


def test_dimension_preserving_models_refuse_a_smaller_latent():
    with pytest.raises(ValueError, match="model=f_nsf"):
        build_nsf((3, 8, 8), latent_dim=12, image=TINY)


def test_image_settings_compose_from_the_config():
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from funnelrun.config import register_configs

    register_configs()
    with initialize_config_module("funnelrun.conf", version_base=None):
        cfg = compose("config", overrides=["model=f_nsf", "model.latent_dim=null", "model.image.levels=1",
                                           "model.image.steps_per_level=1", "model.image.hidden_channels=2",
                                           "model.image.funnel=maxpool"])
    assert cfg.model.image.num_bins == 2 and cfg.model.image.dropout == 0.2  # Table 7, CIFAR-10 5-bit
    model = instantiate(cfg.model, data_shape=(3, 8, 8))
    assert model.latent_dim == 12 and any(isinstance(t, MaxPool) for t in model.transform.transforms)


def test_interleaved_layout_is_the_authors_a9_order():
    """A.9 / the authors' funnel_conv_deeper on MNIST: per funnel [squeeze] one step + 1x1 conv
    [unsqueeze], ActNorm, the funnel, [squeeze] steps_per_level steps + 1x1 conv [unsqueeze]; the
    funnels see one channel; 28 -> 14 -> 7 -> 4 (the third funnel pads 7 to 8) for a latent of 16."""
    model = build_f_nsf((1, 28, 28), latent_dim=16, image=dict(TINY, funnel_layout="interleaved"))
    layers = list(model.transform.transforms)
    kinds = [type(t).__name__ for t in layers]
    assert kinds == ["CompositeTransform", "ActNorm", "ConvFunnel", "CompositeTransform"] * 3 + ["Flatten"]
    funnels = [t for t in layers if isinstance(t, ConvFunnel)]
    assert [f.in_shape for f in funnels] == [(1, 28, 28), (1, 14, 14), (1, 7, 7)]
    assert funnels[2].padding == (1, 0, 1, 0)  # the odd 7 x 7 is padded by the funnel itself
    first = [type(t).__name__ for t in layers[0].transforms]
    assert first == ["Squeeze", "ActNorm", "Conv1x1", "ImageRQSplineCoupling", "Conv1x1", "Unsqueeze"]
    unsqueezed = [type(t).__name__ for t in layers[7].transforms]  # the steps after the second funnel, on 7 x 7
    assert unsqueezed[0] == "ActNorm" and "Squeeze" not in unsqueezed


def test_interleaved_f_nsf_is_exact_on_an_odd_image():
    """Certificate of the A.9 layout through a padded funnel (7 x 7 -> 4 x 4): every block's round
    trip and log-det, each funnel's kept map and right inverse."""
    from funnelrun.evaluation.certificate import certify

    torch.manual_seed(0)
    model = build_f_nsf((1, 14, 14), latent_dim=16, image=dict(TINY, funnel_layout="interleaved")).double().eval()
    _randomise(model)
    errs = certify(model, torch.randn(3, 1, 14, 14, dtype=torch.float64))
    assert errs["roundtrip_max_abs_err"] < 1e-8 and errs["logdet_max_abs_err"] < 1e-8
