"""The image coupling funnel (funnels paper A.7.1's last paragraph): a coupling on the squeezed image
whose untransformed channels are dropped under p_phi. Right inverse, its log-det against the autograd
Jacobian of the kept pixels, a normalised density, and the F-NSF / F-Glow it builds."""
from __future__ import annotations

import math

import pytest
import torch

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.evaluation.exactness import autograd_logdet
from funnelrun.models.image_f_nsf import build_image_f_nsf
from funnelrun.models.image_flows import image_coupling, image_settings
from funnelrun.surjections.conv_funnel import from_tiles, gaussian_log_prob, to_tiles
from funnelrun.surjections.image_coupling_funnel import ImageCouplingFunnel, kept_channels
from funnelrun.transforms.squeeze import squeezed_shape

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = dict(hidden_channels=8, num_res_blocks=1, dropout=0.0, batch_norm=False, num_bins=4)


def _funnel(shape, affine: bool, std: float = 0.3, seed: int = 0) -> ImageCouplingFunnel:
    torch.manual_seed(seed)
    s = image_settings(SETTINGS)
    coupling = image_coupling(squeezed_shape(shape), True, affine, s, transformed_channels=kept_channels(shape[0]))
    funnel = ImageCouplingFunnel(shape, coupling, hidden_features=8).double()
    with torch.no_grad():  # leave the identity start: every parameter matters
        for p in funnel.parameters():
            p.add_(torch.randn_like(p) * std)
    return funnel.eval()


CASES = [((1, 4, 4), False), ((3, 4, 4), True), ((2, 2, 6), False), ((1, 8, 8), True)]


@pytest.mark.parametrize("shape,affine", CASES)
def test_right_inverse_condition(shape, affine):
    funnel = _funnel(shape, affine)
    z = 0.5 * torch.randn(8, *funnel.out_shape, dtype=torch.float64)
    with torch.no_grad():
        x = funnel.inverse(z)
        z_again, contribution = funnel(x)
    assert x.shape == (8, *shape) and funnel.out_features(math.prod(shape)) == math.prod(funnel.out_shape)
    assert torch.allclose(z_again, z, atol=1e-9)  # forward(inverse(z)) == z (A.1)
    assert torch.isfinite(contribution).all()


@pytest.mark.parametrize("shape,affine", CASES)
def test_contribution_is_log_p_phi_plus_the_kept_pixels_log_det(shape, affine):
    """V(x) - log p_phi(x_- | z) equals log|det dz/dx_+| of the autograd Jacobian with x_- held fixed."""
    funnel = _funnel(shape, affine)
    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        z, contribution = funnel(x)
        mean, log_std = funnel.conditional(z)
        log_p = gaussian_log_prob(to_tiles(x)[:, :, :3], mean, log_std).flatten(1).sum(1)
    for i in range(x.shape[0]):
        tiles = to_tiles(x[i : i + 1])

        def kept_to_z(kept: torch.Tensor, tiles: torch.Tensor = tiles) -> torch.Tensor:
            image = from_tiles(torch.cat([tiles[:, :, :3], kept.view_as(tiles[:, :, 3:])], dim=2))
            return funnel(image)[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(kept_to_z, tiles[:, :, 3].reshape(-1))
        expected = torch.linalg.slogdet(jac)[1]
        assert (contribution[i] - log_p[i]).item() == pytest.approx(expected.item(), abs=1e-8)


def test_the_coupling_log_det_matches_autograd_on_the_squeezed_image():
    funnel = _funnel((2, 4, 4), affine=False)
    y = torch.randn(4, *funnel.squeezed_shape, dtype=torch.float64)
    with torch.no_grad():
        _, logdet = funnel.coupling(y)
    assert torch.allclose(logdet, autograd_logdet(funnel.coupling, y), atol=1e-8)


def test_density_with_a_standard_normal_latent_integrates_to_one():
    """Importance sampling of the 4-D density of a 1 x 2 x 2 image (1-D latent) from a broad Gaussian."""
    funnel = _funnel((1, 2, 2), affine=True, std=0.2)
    generator = torch.Generator().manual_seed(0)
    width = 3.0
    x = width * torch.randn(200_000, 4, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        z, contribution = funnel(x.view(-1, 1, 2, 2))
    log_q = standard_normal_log_prob(x / width) - 4 * math.log(width)
    ratio = (standard_normal_log_prob(z.flatten(1)) + contribution - log_q).exp()
    assert ratio.mean().item() == pytest.approx(1.0, abs=4 * ratio.std().item() / math.sqrt(len(ratio)) + 2e-3)


def test_odd_sizes_and_a_wrong_split_fail():
    s = image_settings(SETTINGS)
    with pytest.raises(ValueError, match="even height and width"):
        ImageCouplingFunnel((1, 7, 7), image_coupling((4, 3, 3), True, True, s, transformed_channels=[3]))
    with pytest.raises(ValueError, match="must transform the squeezed channels"):
        ImageCouplingFunnel((1, 4, 4), image_coupling((4, 2, 2), True, True, s))


@pytest.mark.parametrize("affine", [False, True])
def test_f_nsf_and_f_glow_build_coupling_funnels(affine):
    image = dict(SETTINGS, levels=1, steps_per_level=1, funnel="coupling")
    model = build_image_f_nsf((1, 8, 8), affine=affine, image=image).double()
    funnels = [t for t in model.transform.transforms if isinstance(t, ImageCouplingFunnel)]
    assert len(funnels) == 2 and model.latent_dim == 4
    assert type(funnels[0].coupling).__name__ == ("ImageAffineCoupling" if affine else "ImageRQSplineCoupling")
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.isfinite(model.log_prob(x)).all() and model.sample(3).shape == (3, 1, 8, 8)
