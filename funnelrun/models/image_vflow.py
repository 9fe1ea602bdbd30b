"""VFlow on images (Chen et al. 2020, §3.1, §6): a C-channel image x is augmented with
``augment_channels`` = D_Z / (H W) channels a ~ q(a | x), and the multi-scale flow of
:func:`~funnelrun.models.image_flows.multiscale_nsf` (the NSF (C) / Glow image architecture) models
the (C + augment_channels)-channel image concat(x, a): §6's "6-channel VFlow" on CIFAR-10 is
``augment_channels=3``. ``log_prob`` is the one-sample ELBO of eq. (3), log p(x, a) - log q(a | x)
(:class:`~funnelrun.surjections.augment.Augment`), and evaluation adds the importance-weighted
estimate of eq. (5) (:mod:`funnelrun.evaluation.importance`). ``augment_channels=0`` builds the
plain multi-scale flow, which is exact.

q(a | x) is a conditional flow (§3.1): eps ~ N(0, I) of shape (augment_channels, H, W) mapped by
``q_steps`` affine image couplings whose conv-net conditioners see the image x stacked on their
input (channel masks, or checkerboard masks for a single augmented channel, alternating parity).
The paper takes q "similar with the variational dequantization network of Flow++" (§6, App. B);
these couplings are our simpler stand-in. As for the vector VFlow, q has no ActNorm, batch norm or
dropout: it is sampled in the inverse direction and scored in the forward one, which must agree.
"""
from __future__ import annotations

from typing import Any, Mapping, Union, cast

from funnelrun.distributions.conditional import ConditionalFlow
from funnelrun.models.flow import Flow
from funnelrun.models.image_flows import build_image_nsf, image_settings, multiscale_nsf
from funnelrun.options import ImageVFlowConfig
from funnelrun.surjections.augment import Augment
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.image_coupling import ImageAffineCoupling, MaskKind


def image_q(data_shape: tuple[int, int, int], s: ImageVFlowConfig) -> ConditionalFlow:
    """q(a | x): ``s.q_steps`` affine couplings on a (augment_channels, H, W), conditioned on x."""
    channels, height, width = data_shape
    shape = (s.augment_channels, height, width)
    mask = MaskKind.channel if s.augment_channels > 1 else MaskKind.checkerboard
    steps = [
        ImageAffineCoupling(shape, mask=mask, parity=step % 2 == 0, hidden_channels=s.q_hidden_channels,
                            num_blocks=s.q_res_blocks, dropout=0.0, use_batch_norm=False, context_channels=channels)
        for step in range(s.q_steps)
    ]
    return ConditionalFlow(s.augment_channels, CompositeTransform(steps), shape=shape)


def build_image_vflow(
    data_shape: tuple[int, ...],
    *,
    affine: bool = True,
    image: Union[ImageVFlowConfig, Mapping[str, Any], None] = None,
    entropy_warmup_steps: int = 0,
    entropy_warmup_start: float = 0.5,
) -> Flow:
    """VFlow on images of ``data_shape`` (C, H, W): Augment(q) then the multi-scale flow on
    C + ``image.augment_channels`` channels (affine couplings, or RQ splines with ``affine=False``);
    ``entropy_warmup_*``: q's entropy warm-up (:class:`~funnelrun.surjections.augment.Augment`)."""
    s = cast(ImageVFlowConfig, image_settings(  # replace() keeps the subclass
        image if isinstance(image, ImageVFlowConfig) else ImageVFlowConfig(**(image or {}))))
    if s.augment_channels < 0 or s.q_steps < 1:
        raise ValueError(f"augment_channels must be >= 0 and q_steps >= 1, got {s.augment_channels}, {s.q_steps}")
    if s.augment_channels == 0:
        return build_image_nsf(data_shape, affine=affine, image=s)
    channels, height, width = data_shape
    augmented = (channels + s.augment_channels, height, width)
    augment = Augment(image_q((channels, height, width), s), entropy_warmup_steps, entropy_warmup_start)
    return Flow([augment, multiscale_nsf(augmented, affine, s)], data_shape)
