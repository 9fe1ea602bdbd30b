"""Structured-config schemas, and composing a config as ``funnelrun`` does: a misspelt key or a
wrongly typed value fails with a message naming it and the fix (:mod:`funnelrun.overrides`). Every
YAML option in ``conf/<group>/`` (the package ``funnelrun.conf``) extends one of these schemas
(``defaults: [/schema/<group>/<name>@_here_]``). Nothing here imports torch: composing a config
(``funnelrun --help``, ``--cfg job``, a config error) takes a fraction of a second."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from funnelrun.errors import FunnelrunError
from funnelrun.options import (
    AugmentLayer,
    ConditionalKind,
    ImageArch,
    ImageFlowConfig,
    ImageVFlowConfig,
    LDMaskSource,
    LinearKind,
    Preprocessing,
    QualityNetwork,
    SplineKind,
)
from funnelrun.overrides import explain, key_of
from funnelrun.validation import validate_config


# -- data ---------------------------------------------------------------------------------------
@dataclass
class PlaneDataConfig:
    _target_: str = "funnelrun.data.plane.PlaneDataModule"
    name: str = "four_circles"
    n_train: int = 50_000
    n_val: int = 10_000
    n_test: int = 10_000
    batch_size: int = 256
    eval_batch_size: int = 4096
    #: seed of the generated data (fixed across model seeds, so every run sees the same test split)
    seed: int = 1234
    num_workers: int = 0
    #: where file-based data lives (unused by generated plane sets)
    data_dir: Optional[str] = None


@dataclass
class TabularDataConfig:
    """The MAF tabular sets (funnelrun/data/uci.py); batch sizes per set from funnels paper Table 5."""

    _target_: str = "funnelrun.data.uci.TabularDataModule"
    name: str = MISSING
    #: holds power/, gas/, hepmass/, miniboone/, BSDS300/ as unpacked from Zenodo record 1161203
    data_dir: str = "${oc.env:FUNNELRUN_DATA_DIR,data}"
    batch_size: int = 512
    eval_batch_size: int = 4096
    #: seed of the training batch order (the splits are fixed by the MAF preprocessing)
    seed: int = 1234
    num_workers: int = 0


@dataclass
class Table7Row:
    """One column of the funnels paper's Table 7 (A.8): the image-flow settings of a data set."""

    levels: int = MISSING
    hidden_channels: int = MISSING
    num_bins: int = MISSING
    dropout: float = MISSING


@dataclass
class ImageDataConfig:
    """Image sets (funnelrun/data/images.py): n-bit, uniformly dequantized; ``preprocessing`` gives the
    model's first layers (their Jacobian counts in the BPD). Batch sizes: funnels paper Table 7."""

    _target_: str = "funnelrun.data.images.ImageDataModule"
    #: mnist, fashion_mnist, cifar10, imagenet32, imagenet64, celeba, digits
    name: str = MISSING
    #: torchvision's layout: MNIST/raw/, FashionMNIST/raw/, cifar-10-batches-py/, celeba/; and imagenet32/,
    #: imagenet64/ holding the official npz files (see the data yaml files)
    data_dir: str = "${oc.env:FUNNELRUN_DATA_DIR,data}"
    #: colour depth n: x_n = floor(x_8 / 2^(8 - n))
    bits: int = 8
    batch_size: int = 512
    eval_batch_size: int = 1024
    #: seed of the training order and dequantization noise (the splits never depend on it)
    seed: int = 1234
    num_workers: int = 0
    #: training images held out for validation (a fixed subset); null: the set's official split (CelebA)
    val_size: Optional[int] = 5000
    #: logit: logit(alpha + (1 - 2 alpha) x) (NSF/RealNVP code); logit_realnvp: logit(alpha + (1 - alpha) x)
    #: (RealNVP §4.1's formula, Das et al. §4); centre: x - 1/2 (Glow; the funnels paper's image models)
    preprocessing: Preprocessing = Preprocessing.logit
    logit_alpha: float = 0.05
    #: fetch missing files with torchvision's downloaders (only when torchvision is installed)
    download: bool = False
    #: CIFAR-10, ImageNet 32/64, CelebA: memory-map the prepared-data cache (written once, shared by the
    #: processes of a node; funnelrun/data/cache.py); false: read the files into memory in every process
    cache: bool = True
    #: where the cache lives; null: <data_dir>/.funnelrun-cache
    cache_dir: Optional[str] = None
    #: the funnels paper's Table 7 settings for this set, the defaults of model.image.* for the
    #: NSF, F-NSF, Glow and F-Glow image models; null: ImageFlowConfig's (Table 7, CIFAR-10 5-bit)
    table7: Optional[Table7Row] = None


# -- models -------------------------------------------------------------------------------------
@dataclass
class NSFConfig:
    _target_: str = "funnelrun.models.nsf.build_nsf"
    num_steps: int = 10
    transform: SplineKind = SplineKind.coupling
    hidden_features: int = 256
    num_blocks: int = 2
    num_bins: int = 8
    tail_bound: float = 3.0
    dropout: float = 0.0
    batch_norm: bool = False
    linear: LinearKind = LinearKind.lu
    latent_dim: Optional[int] = None
    #: spline couplings: also an elementwise spline on the identity features of each coupling (NSF's
    #: UCI ``apply_unconditional_transform``, on in the funnels authors' uci.py: the Table 1 files)
    unconditional_transform: bool = False
    #: images (C, H, W) only, where the vector fields above are ignored but latent_dim (and transform:
    #: affine); defaults: funnels paper Table 7, CIFAR-10 5-bit (funnelrun/models/image_flows.py)
    image: ImageFlowConfig = field(default_factory=ImageFlowConfig)


@dataclass
class FNSFConfig(NSFConfig):
    _target_: str = "funnelrun.models.f_nsf.build_f_nsf"
    dim_reduction: Optional[int] = None
    #: flow steps before the funnel; null: the funnel replaces the last step
    funnel_level: Optional[int] = 0
    conditional: ConditionalKind = ConditionalKind.flow
    conditional_steps: Optional[int] = None
    conditional_hidden_features: Optional[int] = None
    conditional_bins: Optional[int] = None


@dataclass
class RealNVPConfig:
    _target_: str = "funnelrun.models.glow.build_realnvp"
    num_steps: int = 10
    hidden_features: int = 256
    num_blocks: int = 2
    dropout: float = 0.0
    actnorm: bool = False
    latent_dim: Optional[int] = None
    #: images (C, H, W) only, where the vector fields above are ignored but latent_dim (and actnorm for RealNVP)
    image: ImageFlowConfig = field(default_factory=ImageFlowConfig)


@dataclass
class RealNVPLDMaskConfig:
    """RealNVP with log-det based masking (Das et al. 2019, Sec. 3.2.2): images only."""

    _target_: str = "funnelrun.models.realnvp_ldmask.build_realnvp_ldmask"
    actnorm: bool = False
    latent_dim: Optional[int] = None
    #: training steps of stage 1, the RealNVP without factor-out whose log-dets choose the masks
    stage1_steps: int = 1000
    #: jacobian: per-dimension log-dets of a RealNVP; conv_svd: per-channel log-dets from the singular
    #: values of a Glow's 1 x 1 convolutions, with a Glow (channel-wise masks) as stage 2
    ldmask_source: LDMaskSource = LDMaskSource.jacobian
    #: factor_out must be true: the masks choose what is factored out
    image: ImageFlowConfig = field(default_factory=lambda: ImageFlowConfig(factor_out=True))


@dataclass
class GlowConfig(RealNVPConfig):
    _target_: str = "funnelrun.models.glow.build_glow"
    actnorm: bool = True
    linear: LinearKind = LinearKind.lu


@dataclass
class FGlowConfig(GlowConfig):
    _target_: str = "funnelrun.models.glow.build_f_glow"
    dim_reduction: Optional[int] = None
    #: Glow steps before the funnel; null: the funnel replaces the last step
    funnel_level: Optional[int] = None
    conditional: ConditionalKind = ConditionalKind.flow
    conditional_steps: Optional[int] = None
    conditional_hidden_features: Optional[int] = None


@dataclass
class FMLPConfig:
    _target_: str = "funnelrun.models.f_mlp.build_f_mlp"
    #: 1..D; D builds no funnel (a bijective MLP flow)
    latent_dim: int = MISSING
    #: output width of each layer; null: the funnels paper's A.6 schedule
    widths: Optional[list[int]] = None
    num_bins: int = 10
    tail_bound: float = 2.0
    conditional_hidden_features: int = 128
    #: one set of spline knots for every feature of an activation (the funnels authors' image F-MLP,
    #: Table 8's count) instead of knots per feature
    shared_spline: bool = False
    #: a spline activation after the last layer too (false: only between layers, as the authors' code)
    last_activation: bool = True


@dataclass
class VAEConfig:
    _target_: str = "funnelrun.models.vae.build_vae"
    latent_dim: int = 1
    hidden_features: int = 128
    #: ReLU layers of the encoder and of the decoder (0: linear maps)
    depth: int = 3
    dropout: float = 0.0
    #: images only: resnet (ResNet18-style convolutional, funnels A.8) or mlp on the flattened image
    #: (A.9, Table 4: hidden_features=512, depth=3); both with a learned decoder std per channel
    image_arch: ImageArch = ImageArch.resnet
    #: resnet: output channels of each residual stage (every stage after the first halves H and W);
    #: conv: filters of each convolution (Das et al. 2019 §4.1: [3, 32, 32])
    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    #: resnet: residual basic blocks per stage (ResNet18: 2)
    blocks_per_stage: int = 2


@dataclass
class VFlowConfig:
    _target_: str = "funnelrun.models.vflow.build_vflow"
    #: D_Z, the dimensions sampled from q(a | x); 0 builds the plain (exact) flow
    augment_dim: int = 2
    num_steps: int = 4
    transform: SplineKind = SplineKind.affine
    actnorm: bool = True
    hidden_features: int = 64
    num_blocks: int = 2
    num_bins: int = 8
    tail_bound: float = 3.0
    dropout: float = 0.0
    linear: LinearKind = LinearKind.lu
    #: steps of the conditional flow q(a | x) (VFlow §5: one)
    q_steps: int = 1
    #: null: hidden_features
    q_hidden_features: Optional[int] = None
    #: q's base is N(mu(x), sigma(x)) (a conditional Glow's learned prior) instead of N(0, I)
    q_gaussian: bool = True
    #: steps of the entropy warm-up: training maximises E_q[log p(x, a)] + beta * H[q(a | x)] with beta
    #: rising linearly from entropy_warmup_start to 1 (0: the plain ELBO from the start), so that q(a | x)
    #: does not collapse to noise the flow ignores (funnelrun/surjections/augment.py); evaluation is the ELBO
    entropy_warmup_steps: int = 0
    entropy_warmup_start: float = 0.5
    #: concat (VFlow: a appended to x) or generative_funnel (funnels paper A.2: a conditions one step
    #: G^{-1}(x; a) of x, eq. 9's bound; vectors only, no entropy warm-up)
    augment_layer: AugmentLayer = AugmentLayer.concat
    #: images (C, H, W) only, where the vector fields above are ignored but transform (affine or RQ
    #: couplings): augment_channels, q(a | x) and the multi-scale p-network (funnelrun/models/image_vflow.py)
    image: ImageVFlowConfig = field(default_factory=ImageVFlowConfig)


@dataclass
class FlowVAEConfig(NSFConfig):
    _target_: str = "funnelrun.models.flow_vae.build_flow_vae"
    #: latent size of the VAE that follows the flow (images: null is D / 4)
    latent_dim: Optional[int] = 1
    vae_hidden_features: int = 128
    vae_depth: int = 3
    vae_dropout: float = 0.0
    #: images: the flow is the multi-scale RealNVP of model.image (no factor-out: the VAE models its whole
    #: latent, reshaped to the last level's image) and the VAE is convolutional with these filters
    #: (Das et al. 2019 §4.1: 3, 32, 32, then a fully-connected layer to latent_dim)
    vae_channels: list[int] = field(default_factory=lambda: [3, 32, 32])
    #: images: ActNorm before every coupling of the RealNVP
    actnorm: bool = False


# -- trainer, logger, optimiser -----------------------------------------------------------------
@dataclass
class TrainerConfig:
    """Keyword arguments of ``lightning.pytorch.Trainer`` that funnelrun exposes."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    max_steps: int = 3000
    val_check_interval: int = 500
    check_val_every_n_epoch: Optional[int] = None
    gradient_clip_val: float = 5.0
    gradient_clip_algorithm: str = "norm"
    #: 32-true (default), 64-true; bf16-mixed (CPU, CUDA) or 16-mixed (CUDA): the conditioner nets
    #: of training steps in that precision, everything else fp32; validation and test always fp32
    precision: str = "32-true"
    #: CUDA only: the conditioner nets' fp32 matmuls and convolutions may use TF32 (training steps)
    tf32: bool = False
    log_every_n_steps: int = 50
    limit_val_batches: Optional[float] = None
    limit_test_batches: Optional[float] = None
    #: a progress bar over max_steps: null on interactive terminals only; progress lines (log_every_s) always
    enable_progress_bar: Optional[bool] = None
    deterministic: bool = False


@dataclass
class LoggerConfig:
    _target_: str = "funnelrun.training.loggers.csv_logger"


@dataclass
class WandbLoggerConfig(LoggerConfig):
    _target_: str = "funnelrun.training.loggers.wandb_logger"
    project: str = "funnelrun"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    #: null: online only when W&B is set up and reachable, else offline (sync later)
    mode: Optional[str] = None


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: steps with a non-finite loss/gradient are skipped; this many in a row stop the run
    max_consecutive_nonfinite: int = 10


@dataclass
class EvalConfig:
    #: save the 2-D density/sample figure (2-D data) or a sample grid, samples.png (image data)
    plot: bool = True
    #: image data: a sample grid per temperature after training (samples_T<T>.png, and W&B)
    temperatures: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0])
    #: samples drawn for figures
    num_samples: int = 10_000
    #: grid points per axis for the density figure / integral
    grid_points: int = 200
    #: importance samples S of the test estimate for models that give a bound (exact: false)
    is_samples: int = 1000
    #: importance samples per model call (memory grows with is_chunk_size * data.eval_batch_size)
    is_chunk_size: int = 16
    #: funnelrun-eval: Inception score and FID of samples at every eval.temperatures (funnels paper
    #: Table 3; funnelrun/evaluation/sample_quality.py)
    sample_quality: bool = False
    #: samples per temperature (the paper's protocol: 50,000, FID against the training split)
    quality_samples: int = 50_000
    #: samples drawn and scored (and training images read) per model / network call
    quality_batch_size: int = 500
    #: the FID Inception weights, a local file (never downloaded): torch-fidelity's
    #: weights-inception-2015-12-05-6726825d.pth; needs `pip install 'funnelrun[vision]'`
    inception_weights: Optional[str] = None
    #: inception (Inception score, FID); standin: a small fixed random network for tests and timing,
    #: whose numbers are no IS or FID (written as sample/standin_*)
    quality_network: QualityNetwork = QualityNetwork.inception


@dataclass
class SampleConfig:
    """``funnelrun-sample`` settings."""

    num_samples: int = 1000
    #: each scales the std of every sampled Gaussian
    temperatures: list[float] = field(default_factory=lambda: [1.0])
    #: image models that map data to their latent deterministically (flows, funnels): rows of
    #: latent interpolations between pairs of test images, this many rows
    interpolations: int = 0
    #: null: <checkpoint's run dir>/samples/<time>/
    out_dir: Optional[str] = None


@dataclass
class FunnelrunConfig:
    data: Any = MISSING
    model: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = MISSING
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    seed: int = 0
    #: torch.compile the training log-density: true, false, or auto (compile when the run is long
    #: enough for the compile time to pay back, judged from its first eager steps and
    #: trainer.max_steps; funnelrun/training/compile.py). Falls back to eager with a warning where
    #: compilation fails
    compile: Any = "auto"
    #: null (train from scratch), "last" (resume this run directory), or a path to a .ckpt
    ckpt_path: Optional[str] = None
    #: a run directory holding an interrupted run (checkpoint, no metrics.json) is resumed, so a
    #: requeued SLURM job or the same command run again continues where it stopped
    auto_resume: bool = True
    #: seconds between two progress lines (step, loss, validation NLL, steps/s, ETA): printed where
    #: there is no terminal (a SLURM log), else written to <run>/funnelrun.log beside the bar
    log_every_s: float = 30.0
    #: a short run name (W&B run name, report rows)
    name: str = "${hydra:runtime.choices.model}-${hydra:runtime.choices.data}"


def _if_images(on_images: Any, otherwise: Any, *, _root_: DictConfig) -> Any:
    """``${if_images:a,b}``: ``a`` when the config's data are images (their config has ``bits``), else ``b``.
    ``model/f_nsf.yaml`` takes its default latent size from it: null on images (two funnels, D/16),
    1 on vectors."""
    return on_images if OmegaConf.select(_root_, "data.bits", default=None) is not None else otherwise


def register_configs() -> None:
    if not OmegaConf.has_resolver("if_images"):
        OmegaConf.register_new_resolver("if_images", _if_images)
    cs = ConfigStore.instance()
    cs.store(name="funnelrun_schema", node=FunnelrunConfig)
    cs.store(group="schema/data", name="plane", node=PlaneDataConfig)
    cs.store(group="schema/data", name="tabular", node=TabularDataConfig)
    cs.store(group="schema/data", name="image", node=ImageDataConfig)
    cs.store(group="schema/model", name="nsf", node=NSFConfig)
    cs.store(group="schema/model", name="f_nsf", node=FNSFConfig)
    cs.store(group="schema/model", name="realnvp", node=RealNVPConfig)
    cs.store(group="schema/model", name="realnvp_ldmask", node=RealNVPLDMaskConfig)
    cs.store(group="schema/model", name="glow", node=GlowConfig)
    cs.store(group="schema/model", name="f_glow", node=FGlowConfig)
    cs.store(group="schema/model", name="f_mlp", node=FMLPConfig)
    cs.store(group="schema/model", name="vae", node=VAEConfig)
    cs.store(group="schema/model", name="vflow", node=VFlowConfig)
    cs.store(group="schema/model", name="flow_vae", node=FlowVAEConfig)
    cs.store(group="schema/trainer", name="trainer", node=TrainerConfig)
    cs.store(group="schema/logger", name="csv", node=LoggerConfig)
    cs.store(group="schema/logger", name="wandb", node=WandbLoggerConfig)


#: the package that holds the Hydra config groups (``conf/`` in the repository)
CONFIG_MODULE = "funnelrun.conf"


def _compose(overrides: list[str]) -> DictConfig:
    """Hydra's composition of ``overrides`` (with the ``hydra`` node); raises Hydra's own errors."""
    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def _related(override: str, key: str) -> bool:
    """Whether ``override`` sets ``key``, a key below it, or (a dotted override) a key above it."""
    name = key_of(override)
    return name == key or name.startswith(key + ".") or ("." in name and key.startswith(name + "."))


def _composition_error(exc: BaseException, overrides: list[str]) -> FunnelrunError:
    """The error of composing ``overrides``, explained (suggestions come from the config composed
    without the overrides that set the failing key)."""

    def without(key: str) -> Optional[DictConfig]:
        for attempt in ([o for o in overrides if not _related(o, key)], []):
            try:
                return _compose(attempt)
            except (HydraException, OmegaConfBaseException):
                continue
        return None

    def keys_of(path: str) -> Optional[list[str]]:
        cfg = without(path)
        node = cfg if cfg is None or not path else OmegaConf.select(cfg, path, default=None)
        return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else None

    def value_of(key: str) -> Any:
        cfg = without(key)
        return None if cfg is None else OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)

    return FunnelrunError(explain(exc, overrides, keys_of, value_of, group_options))


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` in ``conf/`` (nested ones as ``table1/power_f_nsf``)."""
    root = resources.files(CONFIG_MODULE)
    node = root.joinpath(*group.split("/"))
    options: list[str] = []

    def walk(folder: Any, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".yaml"):
                options.append(prefix + entry.name.removesuffix(".yaml"))

    if node.is_dir():
        walk(node, "")
    return sorted(set(options))


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``funnelrun <overrides>`` would run with (without its ``hydra`` node).

    Problems Hydra or the schemas find are raised as :class:`~funnelrun.errors.FunnelrunError`."""
    try:
        cfg = _compose(list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise _composition_error(exc, list(overrides)) from exc
    HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.choices.*} (cfg.name) resolves
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def check_overrides(overrides: list[str], multirun: bool = False) -> Optional[DictConfig]:
    """Compose ``overrides`` as ``funnelrun`` (``-m``: every value of every sweep, each beside the first
    value of the others) and raise the first problem as a :class:`FunnelrunError` with its fix, before
    anything runs or a directory is made; returns the config of a single run (None for ``-m``).
    Sweeps that cannot be listed (e.g. an Optuna ``interval``) are left to the sweeper."""
    if not multirun:
        cfg = compose_config(overrides)
        validate_config(cfg)
        return cfg
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise _composition_error(exc, list(overrides)) from exc
    fixed, sweeps = [], []
    for override, text in zip(parsed, overrides):
        if not override.is_sweep_override():
            fixed.append(text)
            continue
        try:
            values = list(override.sweep_string_iterator())
        except (HydraException, ValueError, TypeError):
            continue  # a sweep only its sweeper can list
        if values:
            sweeps.append([f"{override.get_key_element()}={value}" for value in values])
    first = [values[0] for values in sweeps]
    combinations = [fixed + first]
    for index, values in enumerate(sweeps):
        combinations += [fixed + first[:index] + [value] + first[index + 1:] for value in values[1:]]
    for combination in combinations:
        try:
            OverridesParser.create().parse_overrides(combination)
        except HydraException:
            return None  # a value this listing cannot write back: the sweeper reports it
        validate_config(compose_config(combination))
    return None
