"""Image preprocessing layers: round trips, log-dets against autograd, and a BPD computed by hand."""
from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from funnelrun.builder import build_model
from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.evaluation.metrics import bits_per_dim
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.preprocess import Centre, Logit, Rescale

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = {
    "rescale": lambda: Rescale(5),
    "logit": lambda: Logit(0.05),
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
