"""The choices and nested settings the config schemas name (:mod:`funnelrun.config`): enums of the
model and data options and the image architectures' settings. They import nothing heavy (no torch),
so composing a config (``funnelrun --help``, ``--cfg job``, a config error) answers at once; the
models and data modules that read them re-export them where they were defined before
(e.g. ``funnelrun.models.nsf.SplineKind``)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


# -- vector flows (funnelrun.models.nsf, f_nsf) -------------------------------------------------
class SplineKind(str, Enum):
    """The invertible layer of a step: RQ-spline coupling, RQ-spline autoregressive, or affine coupling."""

    coupling = "coupling"
    autoregressive = "autoregressive"
    affine = "affine"


class LinearKind(str, Enum):
    """What mixes features between steps: permutation + LU-linear, a permutation, or nothing
    (``none``: only the alternating coupling masks, as in RealNVP)."""

    lu = "lu"
    permutation = "permutation"
    none = "none"


class ConditionalKind(str, Enum):
    flow = "flow"
    gaussian = "gaussian"


class AugmentLayer(str, Enum):
    """``model.augment_layer`` of VFlow: how a ~ q(a | x) joins x. ``concat``: appended for the
    p-network (VFlow §3.1); ``generative_funnel``: the funnels paper's generative funnel (A.2), a
    conditional step G^{-1}(x; a) of x given a, then the p-network on (G^{-1}(x; a), a)."""

    concat = "concat"
    generative_funnel = "generative_funnel"


# -- image models (funnelrun.models.image_flows, image_vflow, image_vae, realnvp_ldmask) ---------
class FunnelKind(str, Enum):
    """The dimension-reducing layer of an image funnel model: the convolutional funnel (A.7.1, A.8),
    the max-pool surjection (SurVAE), or the coupling funnel (A.7.1's last paragraph: a coupling on
    the squeezed image whose untransformed channels are dropped)."""

    conv = "conv"
    maxpool = "maxpool"
    coupling = "coupling"


class FunnelLayout(str, Enum):
    """Where an image F-NSF puts its funnels. ``first_step`` (funnels paper A.8, Table 2): the first
    NSF step, the funnels back to back, then the rest of the multi-scale NSF. ``interleaved`` (A.9,
    Table 4; the authors' ``funnel_conv_deeper``): per funnel one NSF step, ActNorm and the funnel,
    then ``steps_per_level`` NSF steps; each run of steps works on the squeezed image where it can be
    squeezed and unsqueezes after, so the funnels see the data's channels ("no squeezing")."""

    first_step = "first_step"
    interleaved = "interleaved"


@dataclass
class ImageFlowConfig:
    """Settings of the image architectures; defaults are Table 7's CIFAR-10 5-bit column (A.8)."""

    levels: int = 3
    steps_per_level: int = 7
    hidden_channels: int = 64
    #: residual blocks of the conv net of each coupling (A.8: 3)
    num_res_blocks: int = 3
    num_bins: int = 2
    #: not in Table 7; the vector NSF default
    tail_bound: float = 3.0
    dropout: float = 0.2
    batch_norm: bool = True
    #: factor half the channels out to the base after every level but the last (A.8: not for CIFAR-10)
    factor_out: bool = False
    #: funnel models: the convolutional funnel, the max-pool surjection or the coupling funnel
    funnel: FunnelKind = FunnelKind.conv
    #: units of each of the 3 ReLU layers of the conv (and coupling) funnel's p_phi (A.8: 128)
    conditional_hidden_features: int = 128
    #: F-NSF / F-Glow: where the funnels go (first_step: A.8; interleaved: A.9, the MNIST models)
    funnel_layout: FunnelLayout = FunnelLayout.first_step


@dataclass
class ImageVFlowConfig(ImageFlowConfig):
    """The image settings of the p-network (:class:`ImageFlowConfig`) and of q(a | x)."""

    #: extra channels sampled from q(a | x) (§6, Table 1: 3, a 6-channel flow on CIFAR-10); 0: exact flow
    augment_channels: int = 3
    #: conditional affine couplings of q(a | x) (ours)
    q_steps: int = 2
    #: hidden channels of each q coupling's conv net (ours)
    q_hidden_channels: int = 32
    #: residual blocks of each q coupling's conv net (ours)
    q_res_blocks: int = 1


class ImageArch(str, Enum):
    """``model.image_arch``: the encoder and decoder networks of an image VAE."""

    resnet = "resnet"
    mlp = "mlp"
    #: Das et al. 2019 §4.1: a few plain convolutions and a linear layer (the flow-VAE's prior)
    conv = "conv"


class LDMaskSource(str, Enum):
    """Where stage 1's log-det contributions come from: the Jacobian diagonal of a RealNVP, per
    dimension (Sec. 3.2.2, eq. 12, Fig. 1), or the singular values of a Glow's 1 x 1 convolutions,
    per channel (Sec. 3.2.2, "Implementation for Glow", eqs. 13-14)."""

    jacobian = "jacobian"
    conv_svd = "conv_svd"


# -- data (funnelrun.data.images) ---------------------------------------------------------------
class Preprocessing(str, Enum):
    """``data.preprocessing``: what follows the rescaling to [0, 1)."""

    logit = "logit"
    #: logit(alpha + (1 - alpha) x): RealNVP §4.1's formula, Das et al. 2019 §4 (log-det masking)
    logit_realnvp = "logit_realnvp"
    centre = "centre"


# -- sample quality (funnelrun.evaluation.sample_quality) ------------------------------------------
class QualityNetwork(str, Enum):
    """The network ``funnelrun-eval eval.sample_quality=true`` scores samples with. ``inception``: the
    FID Inception network (torch-fidelity's port of the 2015-12-05 TF Inception, its weights from
    ``eval.inception_weights``): Inception score and FID. ``standin``: a small fixed random network,
    for tests and for timing the evaluation where the weights are not at hand; its numbers are no
    Inception score and no FID, and are written under ``sample/standin_*`` keys."""

    inception = "inception"
    standin = "standin"
