"""Sample quality of image models: the Inception score (IS) and the Fréchet Inception distance (FID)
of samples, funnels paper (Klein et al. 2021) §4, Table 3 (CIFAR-10 5-bit, 50,000 samples: NSF
4.15 / 47.48, F-NSF 4.95 / 45.52, VAE 1.00 / 745).

Definitions (the statistics are torchmetrics' ``InceptionScore`` and ``FrechetInceptionDistance``):

- IS (Salimans et al. 2016): exp(E_x KL(p(y | x) || p(y))), p(y | x) the Inception classifier's
  softmax on a sample x and p(y) its mean over the samples; computed on each of :data:`IS_SPLITS`
  random splits of the samples and reported as the mean and the (Bessel-corrected) standard deviation
  over the splits. Predictions that are one-hot and uniform over K classes give exactly K.
- FID (Heusel et al. 2017): ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)), the Fréchet
  distance between the Gaussians with the means and covariances of the network's 2048-d pool features
  of the reference images (the training split, the paper's protocol) and of the samples.

The network is torch-fidelity's port of the 2015-12-05 TensorFlow Inception, built as torchmetrics
builds it (``NoTrainInceptionV3``, with torch-fidelity's TensorFlow-compatible resize to 299 x 299
rather than torchmetrics' antialiased default), with its weights read from a local file
(:data:`INCEPTION_WEIGHTS_NAME`, ``eval.inception_weights``): nothing is downloaded at run time.
torch-fidelity needs torchvision, so it is the optional extra ``funnelrun[vision]``. One forward pass
gives both the pool features (FID) and the unbiased logits (IS, torch-fidelity's ``logits_unbiased``).
:class:`StandinNetwork` is a small fixed random network with the same interface, for tests and for
timing where the weights are not at hand; its numbers are no IS and no FID.

Images go to the network as the Inception network expects them: uint8 RGB. A sample of an n-bit
model lies in [0, 2^n) (uniform dequantization), so it is floored, clamped to [0, 2^n - 1] and scaled
to 0..255 by v * 255 / (2^n - 1), rounded (as the sample grids show it:
:func:`funnelrun.evaluation.image_grid.to_unit_interval`); one-channel images (MNIST-like) are tiled
to three channels. The reference images go through the same map.
"""
from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn

from funnelrun.console import DEFAULT_EVERY_S, Progress
from funnelrun.data.images import ImageDataModule, NBitImages
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.image_grid import to_unit_interval
from funnelrun.options import QualityNetwork

#: splits of the samples over which the Inception score's mean and sd are taken (Salimans et al. 2016)
IS_SPLITS = 10
#: the FID Inception weights file torch-fidelity (and so torchmetrics) loads
INCEPTION_WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
#: where torch-fidelity publishes it (it downloads this file when given no path)
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
#: pytorch-fid's name for its port of the same TensorFlow 2015-12-05 Inception weights
PYTORCH_FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
#: the two outputs of torch-fidelity's Inception taken: 2048-d pool features (FID), logits (IS)
INCEPTION_OUTPUTS = ["2048", "logits_unbiased"]


def to_uint8_rgb(images: Tensor, bits: int) -> Tensor:
    """(B, C, H, W) samples of ``bits``-bit images (values in [0, 2^bits)), C in {1, 3} -> uint8
    (B, 3, H, W) in 0..255: floor, clamp to [0, 2^bits - 1], times 255 / (2^bits - 1), rounded; one
    channel is tiled to three. Non-finite values become 0 (NaN) or the clamp's bound (+-inf).

    Example (5 bits: 31 -> 255, 1 -> round(255 / 31) = 8; one channel tiled):
        >>> to_uint8_rgb(torch.tensor([[[[31.7, 1.2]]]]), 5)[0, :, 0].tolist()
        [[255, 8], [255, 8], [255, 8]]
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise FunnelrunError(
            f"sample quality scores images of 1 or 3 channels, shape (batch, C, H, W); got shape {tuple(images.shape)}"
        )
    pixels = (to_unit_interval(torch.nan_to_num(images, nan=0.0), bits) * 255).round().to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1).contiguous() if pixels.shape[1] == 1 else pixels


class StandinNetwork(nn.Module):
    """A STAND-IN for the Inception network, for tests and timing only: two strided 3x3 convolutions
    with ReLU, global average pooling to ``num_features`` features, and a linear layer to
    ``num_classes`` logits, with fixed random weights (``seed``). Input: uint8 (B, 3, H, W), any H, W.
    Its "FID" and "IS" measure nothing published; funnelrun writes them as ``sample/standin_*``."""

    def __init__(self, num_features: int = 64, num_classes: int = 10, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(32, num_features, 3, stride=2, padding=1)
            self.fc = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = (images.float() - 128) / 128
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        features = x.mean(dim=(2, 3))
        return features, self.fc(features)


@dataclass
class ScoringNetwork:
    """A network for :func:`sample_quality`: ``module`` maps uint8 (B, 3, H, W) images to (features
    (B, num_features), logits (B, K)); ``name`` is ``inception`` or ``standin``."""

    module: nn.Module
    num_features: int
    name: str


def missing_weights_message(path: Optional[str], vision_missing: bool) -> str:
    """What to do when the FID Inception network cannot be built here."""
    where = ("no file was given (eval.inception_weights=null)" if path is None
             else f"eval.inception_weights={path}: no such file")
    vision = ("; it also needs torch-fidelity, which is not installed here: pip install 'funnelrun[vision]' "
              "(torch-fidelity and torchvision; on a machine where torchvision matches torch, e.g. a CUDA machine: "
              "beside a CPU-only torch, torchvision's wheel breaks `import lightning`)") if vision_missing else ""
    return (
        f"eval.sample_quality=true scores samples with the FID Inception network, whose weights are read from a "
        f"local file (nothing is downloaded at run time), and {where}{vision}. The file is torch-fidelity's "
        f"{INCEPTION_WEIGHTS_NAME} (the TensorFlow 2015-12-05 Inception weights that FID is defined with; pytorch-fid "
        f"ships its own port of them as {PYTORCH_FID_WEIGHTS_NAME}), published at {INCEPTION_WEIGHTS_URL}. On a "
        f"machine with a network fetch it (curl -LO {INCEPTION_WEIGHTS_URL}), copy it here and pass "
        f"eval.inception_weights=<path to {INCEPTION_WEIGHTS_NAME}>. Nothing was sampled and nothing was written"
    )


def _torch_fidelity_missing() -> bool:
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    return not bool(_TORCH_FIDELITY_AVAILABLE)


def inception_network(weights: Optional[str]) -> ScoringNetwork:
    """torch-fidelity's FID Inception (as torchmetrics builds it) with the weights file ``weights``,
    giving (2048-d pool features, 1008 unbiased logits) of uint8 (B, 3, H, W) images. Raises a
    FunnelrunError naming the file, where it is published and how to fetch it when the file is not
    there or torch-fidelity is not installed (before anything is sampled)."""
    vision_missing = _torch_fidelity_missing()
    if weights is None or not Path(weights).expanduser().is_file() or vision_missing:
        raise FunnelrunError(missing_weights_message(weights, vision_missing))
    from torchmetrics.image.fid import NoTrainInceptionV3

    class _BothOutputs(NoTrainInceptionV3):
        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
            features, logits = self._torch_fidelity_forward(x)
            return features.reshape(len(x), -1), logits.reshape(len(x), -1)

    try:  # antialias=False: torch-fidelity's TensorFlow-1.x-compatible bilinear resize to 299 x 299
        module = _BothOutputs(name="inception-v3-compat", features_list=INCEPTION_OUTPUTS,
                              feature_extractor_weights_path=str(Path(weights).expanduser()), antialias=False)
    except (RuntimeError, OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:  # not this network's weights
        raise FunnelrunError(
            f"eval.inception_weights={weights} could not be loaded as the FID Inception weights ({exc}); it must be "
            f"torch-fidelity's {INCEPTION_WEIGHTS_NAME} ({INCEPTION_WEIGHTS_URL})"
        ) from None
    return ScoringNetwork(module, 2048, QualityNetwork.inception.value)


def quality_network(kind: QualityNetwork | str, weights: Optional[str]) -> ScoringNetwork:
    """The network ``eval.quality_network`` names (:class:`~funnelrun.options.QualityNetwork`)."""
    if QualityNetwork(kind) == QualityNetwork.inception:
        return inception_network(weights)
    standin = StandinNetwork()
    return ScoringNetwork(standin, standin.num_features, QualityNetwork.standin.value)


class _Features(nn.Module):
    """The identity on features already computed, as the ``feature`` network of torchmetrics' metrics
    (which then only accumulate the statistics)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


@dataclass
class QualityScores:
    """FID and Inception score (mean, sd over the splits) of one set of samples."""

    fid: float
    inception_score: float
    inception_score_sd: float


class QualityStatistics:
    """torchmetrics' FID and IS statistics fed with features computed elsewhere: the reference
    features once (:meth:`add_reference`), then per set of samples :meth:`add_samples`,
    :meth:`compute`, :meth:`reset_samples` (the reference is kept)."""

    def __init__(self, num_features: int, splits: int = IS_SPLITS):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore

        self.fid = FrechetInceptionDistance(feature=_Features(num_features), reset_real_features=False)
        with warnings.catch_warnings():  # "will save all extracted features": logits, 4 kB per sample
            warnings.filterwarnings("ignore", message=".*save all extracted features.*")
            self.inception = InceptionScore(feature=_Features(num_features), splits=splits)

    def to(self, device: torch.device) -> "QualityStatistics":
        self.fid.to(device)
        self.inception.to(device)
        return self

    def add_reference(self, features: Tensor) -> None:
        self.fid.update(features, real=True)

    def add_samples(self, features: Tensor, logits: Tensor) -> None:
        self.fid.update(features, real=False)
        self.inception.update(logits)

    def compute(self) -> QualityScores:
        """FID (float64 statistics) and IS over the samples added since the last reset; the IS splits
        are drawn from torch's global generator (seed it for repeatable splits)."""
        mean, sd = self.inception.compute()
        return QualityScores(float(self.fid.compute()), float(mean), float(sd))

    def reset_samples(self) -> None:
        self.fid.reset()
        self.inception.reset()


def frechet_distance(reference: Tensor, samples: Tensor) -> float:
    """FID-style Fréchet distance of two feature sets (N, d), through :class:`QualityStatistics`."""
    stats = QualityStatistics(reference.shape[1])
    stats.add_reference(reference)
    stats.fid.update(samples, real=False)
    return float(stats.fid.compute())


def inception_score(logits: Tensor, splits: int = IS_SPLITS) -> tuple[float, float]:
    """(mean, sd) over ``splits`` of the Inception score of logits (N, K), through :class:`QualityStatistics`."""
    stats = QualityStatistics(logits.shape[1], splits)
    stats.inception.update(logits)
    mean, sd = stats.inception.compute()
    return float(mean), float(sd)


@dataclass
class SampleQualityResult:
    """Per temperature (its str as key): the scores, and how many samples had non-finite values."""

    network: str
    scores: dict[str, QualityScores]
    nonfinite: dict[str, int]
    samples: int
    reference_examples: int


def reference_images(datamodule: ImageDataModule) -> NBitImages:
    """The paper's FID reference: the whole official training split, the validation images held out
    of it included (CIFAR-10: all 50,000)."""
    train = datamodule.train_data
    return train if train.rows is None else NBitImages(train.array, train.bits)


def _batches(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def sample_quality(
    sample: Callable[[int, float], Tensor], datamodule: ImageDataModule, network: ScoringNetwork,
    temperatures: list[float], num_samples: int, batch_size: int, device: torch.device,
    every_s: float = DEFAULT_EVERY_S,
) -> SampleQualityResult:
    """FID against the training split (:func:`reference_images`) and IS of ``num_samples`` samples
    ``sample(n, temperature)`` at each temperature, drawn and scored ``batch_size`` at a time on
    ``device`` (the network's features of the reference are computed once)."""
    net = network.module.to(device)
    stats = QualityStatistics(network.num_features).to(device)
    bits = datamodule.bits
    if bits is None:  # an image data module always has its bit depth
        raise FunnelrunError("sample quality needs n-bit image data (data.bits)")
    reference = reference_images(datamodule)
    sizes = _batches(len(reference), batch_size)
    with torch.no_grad(), Progress("sample quality: the training split", total=len(sizes), every_s=every_s) as bar:
        for k, size in enumerate(sizes):
            images = reference.take(np.arange(k * batch_size, k * batch_size + size))
            features, _ = net(to_uint8_rgb(images.to(device), bits))
            stats.add_reference(features)
            bar.update()
    scores: dict[str, QualityScores] = {}
    nonfinite: dict[str, int] = {}
    for temperature in temperatures:
        sizes = _batches(num_samples, batch_size)
        bad = 0
        with torch.no_grad(), Progress(f"sample quality: T = {temperature}", total=len(sizes), every_s=every_s) as bar:
            for size in sizes:
                x = sample(size, float(temperature)).to(device)
                bad += int((~torch.isfinite(x.flatten(1))).any(dim=1).sum())
                features, logits = net(to_uint8_rgb(x, bits))
                stats.add_samples(features, logits)
                bar.update()
        scores[str(temperature)] = stats.compute()
        nonfinite[str(temperature)] = bad
        stats.reset_samples()
    return SampleQualityResult(network.name, scores, nonfinite, num_samples, len(reference))


def quality_metrics(result: SampleQualityResult) -> dict[str, object]:
    """The keys ``funnelrun-eval`` writes: ``sample/fid`` ({temperature: FID}) and
    ``sample/inception_score`` ({temperature: {mean, sd}}) for the Inception network; for the
    stand-in those two are null and its numbers are ``sample/standin_fid`` and
    ``sample/standin_inception_score`` (no FID or IS: a random network's)."""
    fid = {t: s.fid for t, s in result.scores.items()}
    score = {t: {"mean": s.inception_score, "sd": s.inception_score_sd} for t, s in result.scores.items()}
    inception = result.network == "inception"
    return {
        "sample/fid": fid if inception else None,
        "sample/inception_score": score if inception else None,
        "sample/standin_fid": None if inception else fid,
        "sample/standin_inception_score": None if inception else score,
        "sample/quality_network": result.network,
        "sample/quality_samples": result.samples,
        "sample/reference_examples": result.reference_examples,
        "sample/inception_score_splits": IS_SPLITS,
        "sample/nonfinite_samples": result.nonfinite,
    }
