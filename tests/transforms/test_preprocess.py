"""Image preprocessing layers: round trips, log-dets against autograd, and a BPD computed by hand."""
from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from funnelrun.builder import build_data, build_model
from funnelrun.config import compose_config
from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.evaluation.metrics import bits_per_dim
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.preprocess import Centre, Logit, Rescale

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = {
    "rescale": lambda: Rescale(5),
    "logit": lambda: Logit(0.05),
    "logit_realnvp": lambda: Logit(0.05, symmetric=False),
    "centre": Centre,
    "rescale+logit": lambda: CompositeTransform([Rescale(5), Logit(0.05)]),
}


def _images(bits: int = 5) -> torch.Tensor:
    """Dequantized 2-channel 2x2 images in [0, 2^bits), edges included, float64."""
    torch.manual_seed(0)
    x = torch.randint(0, 2**bits, (4, 2, 2, 2)).double() + torch.rand(4, 2, 2, 2, dtype=torch.float64)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 2**bits - 1e-9
    return x


@pytest.mark.parametrize("name", LAYERS)
def test_roundtrip_and_logdet_against_autograd(name: str) -> None:
    layer = LAYERS[name]().double()
    x = _images() if name.startswith("rescale") else _images() / 32
    assert roundtrip_max_abs_err(layer, x) < 1e-9
    assert logdet_max_abs_err(layer, x) < 1e-9
    z, contribution = layer(x)
    assert z.shape == x.shape and contribution.shape == (4,)


def test_rescale_logdet_is_minus_d_bits_ln2() -> None:
    _, logdet = Rescale(5)(torch.rand(3, 2, 2, 2) * 32)
    assert torch.allclose(logdet, torch.full((3,), -8 * 5 * math.log(2)))


def test_logit_stays_finite_on_the_closed_unit_interval() -> None:
    z, logdet = Logit(0.05)(torch.tensor([[0.0, 1.0]]))
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    assert torch.allclose(z, torch.tensor([[math.log(0.05 / 0.95), math.log(0.95 / 0.05)]]))


def test_logit_alpha_range() -> None:
    with pytest.raises(ValueError, match="alpha"):
        Logit(0.5)


class _TwoPixelData:
    """What build_model needs of a DataModule: a 1x1x2 8-bit image, preprocessing Rescale + Centre."""

    data_shape = (1, 1, 2)
    bits = 8

    def preprocessing(self):
        return [Rescale(8), Centre()]


def test_bpd_by_hand_through_build_model() -> None:
    """A model = Rescale(8) + Centre + N(0, I) (no layer of its own) on a 1x1x2 image.

    y = (3.5, 200.25): z = y / 256 - 1/2 = (-0.486328125, 0.2822265625);
    log p(y) = sum log N(z_i) - 2 * 8 ln 2, so
    BPD = -log p / (2 ln 2) = 8 + (z1^2 + z2^2 + 2 ln 2 pi) / (4 ln 2).
    """
    cfg = OmegaConf.create({"model": {"_target_": "funnelrun.models.flow.Flow", "layers": []}})
    model = build_model(cfg, _TwoPixelData())
    assert [type(t) for t in model.transform.transforms] == [Rescale, Centre]
    assert model.latent_dim == 2 and model.exact
    y = torch.tensor([[[[3.5, 200.25]]]], dtype=torch.float64)
    z1, z2 = -0.486328125, 0.2822265625
    by_hand = 8 + (z1**2 + z2**2 + 2 * math.log(2 * math.pi)) / (4 * math.log(2))
    assert by_hand == pytest.approx(9.4397812, abs=1e-7)  # (0.23651505 + 0.07965183 + 3.67575413) / 2.77258872
    nll = -model.log_prob(y).item()
    assert bits_per_dim(nll, model.data_dim, 8) == pytest.approx(by_hand, abs=1e-12)


def test_one_sided_logit_is_finite_up_to_the_last_float_below_one() -> None:
    """logit(alpha + (1 - alpha) x) (Das et al. §4): s -> 1 as x -> 1, so 1 - s is computed as
    (1 - alpha)(1 - x); the largest dequantized float32 pixel (x = 1 - 2^-24) stays finite."""
    x = torch.tensor([[0.0, 0.5, 1.0 - 2.0**-24]], dtype=torch.float32)
    z, logdet = Logit(0.05, symmetric=False)(x)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    assert z[0, 0].item() == pytest.approx(math.log(0.05 / 0.95), rel=1e-6)
    assert z[0, 2].item() == pytest.approx(math.log((0.05 + 0.95 * (1 - 2**-24)) / (0.95 * 2**-24)), rel=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        Logit(1.0, symmetric=False)


class _TwoPixelLogitData(_TwoPixelData):
    def preprocessing(self):
        return [Rescale(8), Logit(0.05, symmetric=False)]


def test_bpd_by_hand_with_the_one_sided_logit() -> None:
    """A model = Rescale(8) + logit(0.05 + 0.95 x) + N(0, I) on the 1x1x2 image y = (3.5, 200.25):

    x = y / 256 = (0.013671875, 0.7822265625), s = 0.05 + 0.95 x = (0.06298828125, 0.793115234375),
    z = log(s / (1 - s)) = (-2.69974709, 1.34380658),
    log p(y) = sum [log N(z_i) + log 0.95 - log s_i - log(1 - s_i)] - 2 * 8 ln 2,
    BPD = -log p / (2 ln 2) = 9.33481228: the logit's Jacobian and the dequantization term are in it."""
    cfg = OmegaConf.create({"model": {"_target_": "funnelrun.models.flow.Flow", "layers": []}})
    model = build_model(cfg, _TwoPixelLogitData())
    y = torch.tensor([[[[3.5, 200.25]]]], dtype=torch.float64)
    s = (0.06298828125, 0.793115234375)
    z = [math.log(si / (1 - si)) for si in s]
    assert z == pytest.approx([-2.69974709, 1.34380658], abs=1e-8)
    log_p = sum(-0.5 * zi**2 - 0.5 * math.log(2 * math.pi) + math.log(0.95) - math.log(si) - math.log(1 - si)
                for zi, si in zip(z, s)) - 2 * 8 * math.log(2)
    by_hand = -log_p / (2 * math.log(2))
    assert by_hand == pytest.approx(9.33481228, abs=1e-7)
    nll = -model.log_prob(y).item()
    assert bits_per_dim(nll, model.data_dim, 8) == pytest.approx(by_hand, abs=1e-12)


def test_data_preprocessing_logit_realnvp_builds_the_one_sided_logit() -> None:
    data = build_data(compose_config(["data=digits", "data.preprocessing=logit_realnvp", "data.logit_alpha=0.1"]))
    rescale, logit = data.preprocessing()
    assert isinstance(rescale, Rescale) and isinstance(logit, Logit)
    assert logit.symmetric is False and logit.alpha == 0.1
