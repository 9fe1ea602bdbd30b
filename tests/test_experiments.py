"""The papers' experiments as ``experiment=`` configs: every file composes, passes validation and
builds the model the paper describes: the latent size, the first layers in the order of the paper
and the authors' code (sambklein/funnels_repo: experiments/uci.py, image_generation.py), and for
every row of funnels Table 8 the parameter count within 0.5 %. The ones whose data is embedded
(or present in ../shared/data) run with a tiny-steps override."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

import funnelrun.conf
from funnelrun.config import compose_config
from funnelrun.distributions.conditional import ConditionalDiagonalGaussian, ConditionalFlow
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling
from funnelrun.transforms.multiscale import MultiScale
from funnelrun.transforms.splines import RQSpline
from funnelrun.validation import validate_config

from conftest import TINY

EXPERIMENT_DIR = Path(funnelrun.conf.__file__).parent / "experiment"
EXPERIMENTS = sorted(str(p.relative_to(EXPERIMENT_DIR).with_suffix("")) for p in EXPERIMENT_DIR.rglob("*.yaml"))
#: data shapes (funnels paper Table 5 dimensions; image sizes), so models build without the files
SHAPES = {
    "power": (6,), "gas": (8,), "hepmass": (21,), "miniboone": (43,), "bsds300": (63,),
    "cifar10": (3, 32, 32), "imagenet64": (3, 64, 64), "mnist": (1, 28, 28), "checkerboard": (2,),
    "imagenet32": (3, 32, 32), "celeba": (3, 64, 64),
}
#: Table 5 dimension reductions: the funnel models of Table 1 have latent D - reduction
REDUCTION = {"power": 2, "gas": 2, "hepmass": 5, "miniboone": 10, "bsds300": 15}
#: Table 5 funnel levels (flow steps before the funnel) and flow steps
FUNNEL_LEVEL = {"power": 2, "gas": 2, "hepmass": 0, "miniboone": 4, "bsds300": 4}
FLOW_STEPS = {"power": 10, "gas": 10, "hepmass": 20, "miniboone": 10, "bsds300": 10}
#: funnels paper Table 8: the parameters of the Table 4 models
TABLE8 = {
    "table4/mnist_vae_4": 1_861_401, "table4/mnist_vae_16": 1_879_857,
    "table4/mnist_f_nsf_4": 7_286_164, "table4/mnist_f_nsf_16": 5_464_623,
    "table4/mnist_f_mlp_4": 1_890_324, "table4/mnist_f_mlp_16": 1_888_020,
    "table4/mnist_nsf": 4_724_430,
}
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_the_tables_are_all_there():
    tables = {e.split("/")[0] for e in EXPERIMENTS if "/" in e}
    assert tables == {"table1", "table2", "table4", "drf", "vflow"}
    assert sum(e.startswith("table1/") for e in EXPERIMENTS) == 5 * 6  # 5 data sets x 6 models
    assert sum(e.startswith("table2/") for e in EXPERIMENTS) == 4 * 4  # 4 data sets x 4 models
    assert sum(e.startswith("table4/") for e in EXPERIMENTS) == 7
    # Das et al. Table 1's sets x (RealNVP, with log-det masking, Glow, flow-VAE); VFlow §5's pair
    assert sorted(e for e in EXPERIMENTS if e.startswith("drf/")) == [
        f"drf/{data}_{model}" for data in DRF_SETS for model in DRF_MODELS]
    assert sorted(e for e in EXPERIMENTS if e.startswith("vflow/")) == ["vflow/checkerboard_glow",
                                                                       "vflow/checkerboard_vflow"]


def _expected_latent(name: str, data: str, shape: tuple[int, ...]) -> int:
    size = 1
    for n in shape:
        size *= n
    if name.startswith("table1/"):
        return size - REDUCTION[data] if name.split("_", 1)[1] in ("f_nsf", "f_glow", "f_mlp", "vae") else size
    if name.startswith("table2/"):
        return size // 16 if name.endswith(("f_nsf", "vae")) else size
    if name.startswith("table4/"):
        return size if name.endswith("nsf") and "f_nsf" not in name else int(name.rsplit("_", 1)[1])
    if name.startswith("drf/"):
        return size // 4 if name.endswith("flow_vae") else size  # Fig. 2(b): dim(eps) = D / 4
    return -1


def _kinds(layers) -> list[str]:
    return [type(t).__name__ for t in layers]


STEP = ["RandomPermutation", "LULinear"]


def _check_table1_order(name: str, data: str, model) -> None:
    """Table 1 (A.6, the authors' uci.py): permutation -> LU-linear before every step, the funnel's
    included; NSF couplings with the unconditional spline on their identity features; Glow without
    ActNorm; a flow p_phi but on BSDS300 (a Gaussian ansatz, Table 1's text)."""
    kind = name.split("_", 1)[1]
    layers = list(model.transform.transforms)
    kinds = _kinds(layers)
    if kind in ("nsf", "glow"):
        coupling = "RQSplineCoupling" if kind == "nsf" else "AffineCoupling"
        assert kinds == [*STEP, coupling] * FLOW_STEPS[data] + ["LULinear"]
    elif kind in ("f_nsf", "f_glow"):
        coupling = "RQSplineCoupling" if kind == "f_nsf" else "AffineCoupling"
        level = FUNNEL_LEVEL[data]
        after = FLOW_STEPS[data] - level - 1
        assert kinds == [*STEP, coupling] * level + [*STEP, "CouplingFunnel"] + [*STEP, coupling] * after + ["LULinear"]
        funnel = layers[3 * level + 2]
        assert isinstance(funnel.coupling, RQSplineCoupling if kind == "f_nsf" else AffineCoupling)
        assert funnel.dropped == REDUCTION[data] and funnel.coupling.transform_idx.numel() == SHAPES[data][0] - funnel.dropped
        density = ConditionalDiagonalGaussian if data == "bsds300" else ConditionalFlow
        assert isinstance(funnel.conditional, density)
    elif kind == "f_mlp":  # A.6: two preserving layers, one to (D + L) / 2, one preserving, one to L, three preserving
        keep, drop = ["RandomPermutation", "LULinear", "RQSpline"], ["RandomPermutation", "FunnelMLP", "RQSpline"]
        assert kinds == keep * 2 + drop + keep + drop + keep * 3
    else:
        assert kinds == ["VAELayer"]
    couplings = [m for m in model.modules() if isinstance(m, RQSplineCoupling)]
    assert all(c.unconditional is not None for c in couplings)
    assert not any(type(m).__name__ == "ActNorm" for m in model.modules())


def _check_image_order(name: str, cfg, model) -> None:
    """Table 2 (A.8): the multi-scale NSF / affine baseline, factoring out on ImageNet64 only; the
    F-NSF as the first NSF step, two funnels, the rest of the NSF; the ResNet VAE. Table 4 (A.9,
    the authors' image_generation.py): the F-NSF's interleaved blocks, the flattened F-MLP with
    shared-knot activations between its five layers, the MLP VAE, the multi-scale NSF."""
    layers = list(model.transform.transforms)
    kinds = _kinds(layers)
    kind = name.split("_", 2)[-1] if name.startswith("table2/") else name.split("/mnist_")[1]
    if kind in ("nsf", "baseline"):
        (levels,) = layers
        assert isinstance(levels, MultiScale) and len(levels.levels) == cfg.model.image.levels
        coupling = "ImageRQSplineCoupling" if kind == "nsf" else "ImageAffineCoupling"
        assert _kinds(levels.levels[0].transforms)[:4] == ["Squeeze", "ActNorm", "Conv1x1", coupling]
        assert _kinds(levels.levels[0].transforms).count(coupling) == 7  # 7 steps per level (A.8)
        assert bool(levels.factored_shapes) == name.startswith("table2/imagenet64")
    elif name.startswith("table2/") and kind == "f_nsf":
        assert kinds == ["ActNorm", "Conv1x1", "ImageRQSplineCoupling", "ConvFunnel", "ConvFunnel", "MultiScale"]
        assert bool(layers[-1].factored_shapes) == name.startswith("table2/imagenet64")
    elif kind.startswith("f_nsf"):  # Table 4: 3 funnels for 16, 4 for 4 (A.9)
        funnels = {16: 3, 4: 4}[model.latent_dim]
        assert kinds == ["CompositeTransform", "ActNorm", "ConvFunnel", "CompositeTransform"] * funnels + ["Flatten"]
        assert _kinds(layers[0].transforms) == ["Squeeze", "ActNorm", "Conv1x1", "ImageRQSplineCoupling", "Conv1x1",
                                                "Unsqueeze"]
        assert _kinds(layers[3].transforms).count("ImageRQSplineCoupling") == 7
    elif kind.startswith("f_mlp"):  # A.9: 784 -> 512 -> 256 -> 128 -> 64 -> LS
        assert kinds == ["Flatten"] + ["RandomPermutation", "FunnelMLP", "RQSpline"] * 4 + ["RandomPermutation", "FunnelMLP"]
        assert [t.features - t.dropped for t in layers if type(t).__name__ == "FunnelMLP"] == [512, 256, 128, 64,
                                                                                               model.latent_dim]
        assert all(t.shared and t.num_bins == 10 for t in layers if isinstance(t, RQSpline))
    else:
        assert kinds == ["ImageVAELayer"]
    assert cfg.data.preprocessing == "centre"  # Glow's x / 2^n - 1/2: the authors' image code, every model


DRF_SETS = ["celeba", "cifar10", "imagenet32", "imagenet64"]
DRF_MODELS = ["flow_vae", "glow", "realnvp", "realnvp_ldmask"]
#: Das et al. §4.2: squeezing once on CIFAR-10, thrice on ImageNet 32, 4 times at 64 x 64 (levels = squeezes + 1)
DRF_LEVELS = {"cifar10": 2, "imagenet32": 4, "imagenet64": 5, "celeba": 5}
#: §4: residual blocks per coupling, 8 on CIFAR-10, 4 on the other 32 x 32 set, 2 at 64 x 64
DRF_BLOCKS = {"cifar10": 8, "imagenet32": 4, "imagenet64": 2, "celeba": 2}


def _check_drf_model(name: str, data: str, cfg, model) -> None:
    """Das et al. §4: RealNVP levels of 3 checkerboard, a squeeze, 3 channel couplings, and 4 checkerboard
    couplings at the end, with the set's residual blocks; the flow-VAE's VAE on the flow's latent image
    with 3, 32, 32 filters (§4.1); RealNVP's logit with alpha = 0.05, batch 64, L2 5e-5."""
    kind = name.split("_", 1)[1]
    assert cfg.data.preprocessing == "logit_realnvp" and cfg.data.logit_alpha == 0.05
    assert cfg.data.batch_size == 64 and cfg.optim.weight_decay == 5e-5
    layers = list(model.transform.transforms)
    assert isinstance(layers[0], MultiScale)
    levels = layers[0].levels
    if kind != "glow":
        assert len(levels) == DRF_LEVELS[data] and cfg.model.image.num_res_blocks == DRF_BLOCKS[data]
        first, last = _kinds(levels[0].transforms), _kinds(levels[-1].transforms)
        squeeze = "LogDetSqueeze" if kind == "realnvp_ldmask" else "Squeeze"
        assert first == ["ImageAffineCoupling"] * 3 + [squeeze] + ["ImageAffineCoupling"] * 3
        assert [c.mask.value for c in levels[0].transforms if hasattr(c, "mask")] == ["checkerboard"] * 3 + [
            "channel"] * 3
        assert last == ["ImageAffineCoupling"] * 4
    if kind == "flow_vae":
        assert _kinds(layers) == ["MultiScale", "Unflatten", "ImageVAELayer"] and not layers[0].factored_shapes
        convs = [m for m in layers[2].encoder.modules() if type(m).__name__ == "Conv2d"]
        assert [c.out_channels for c in convs] == [3, 32, 32] and model.exact is False
    else:
        assert len(layers) == 1 and bool(layers[0].factored_shapes) and model.exact is True


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_builds_the_papers_model(name):
    cfg = compose_config([f"experiment={name}"])
    validate_config(cfg)
    data = next(k for k in SHAPES if cfg.data.name.startswith(k))
    shape = SHAPES[data]
    model = instantiate(cfg.model, data_shape=shape)
    expected = _expected_latent(name, data, shape)
    if expected > 0:
        assert model.latent_dim == expected
    if name.startswith("table1/"):
        _check_table1_order(name, data, model)
    elif name.startswith("drf/"):
        _check_drf_model(name, data, cfg, model)
    elif name.startswith(("table2/", "table4/")):
        _check_image_order(name, cfg, model)
    if name in TABLE8:
        assert count(model) == pytest.approx(TABLE8[name], rel=0.005)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("latent", [4, 16])
def test_table4_f_mlp_count_is_the_authors_less_their_unused_parameters(latent):
    """The authors' F-MLP (image_generation.py, funnelMLP) gives exactly Table 8's count; ours differs by
    the 7,680 parameters of the LayerNorms their MLPs build but never apply (3 of width 256 in each
    of 5 layers' p_phi) and the second bias their W' carries beside R's (960 + LS)."""
    model = instantiate(compose_config([f"experiment=table4/mnist_f_mlp_{latent}"]).model, data_shape=SHAPES["mnist"])
    unused_layernorms, second_bias = 5 * 3 * 2 * 256, 512 + 256 + 128 + 64 + latent
    assert count(model) == TABLE8[f"table4/mnist_f_mlp_{latent}"] - unused_layernorms - second_bias


@pytest.mark.parametrize("data", list(REDUCTION))
def test_table1_funnels_have_fewer_parameters_than_their_baselines(data):
    """A.6: "funnel models are built such that they have less parameters than their non-funnel
    baselines" (the paper gives no counts for Table 1)."""
    def params(row: str) -> int:
        return count(instantiate(compose_config([f"experiment=table1/{data}_{row}"]).model, data_shape=SHAPES[data]))

    assert params("f_nsf") < params("nsf")
    assert params("f_glow") < params("glow")


def test_every_experiment_is_named_by_its_file():
    """``funnelrun-report --paper`` finds a run's row of the paper by its name."""
    for name in EXPERIMENTS:
        if name.startswith(("table", "drf/", "vflow/")):
            assert compose_config([f"experiment={name}"]).name == name


def test_the_log_det_masking_recipe_uses_das_et_als_logit():
    cfg = compose_config(["experiment=realnvp_ldmask_mnist"])
    assert cfg.data.preprocessing == "logit_realnvp" and cfg.data.logit_alpha == 0.05


def test_table2_batch_sizes_are_table7s():
    assert compose_config(["experiment=table2/cifar10_5bit_nsf"]).data.batch_size == 512
    assert compose_config(["experiment=table2/imagenet64_8bit_nsf"]).data.batch_size == 256


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if "checkerboard" in e])
def test_embedded_data_experiments_run_with_tiny_steps(run_cli, tmp_path, name):
    tiny = [o for o in TINY if not o.startswith("model.")]
    result = run_cli(tmp_path / "run", f"experiment={name}", *tiny, "model.hidden_features=16", "eval.is_samples=8")
    assert result.code == 0, result.err
    assert result.metrics["steps"] == 6


@pytest.mark.usefixtures("one_thread")
@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="real MNIST absent")
def test_table4_f_mlp_runs_on_real_mnist_with_tiny_steps(run_cli, tmp_path, capsys):
    """The user's path for a Table 4 row: train, score Fashion-MNIST, put it beside the paper."""
    from funnelrun.cli import eval_main, report_main

    overrides = ["experiment=table4/mnist_f_mlp_16", f"data.data_dir={SHARED_DATA}", "trainer.max_steps=2",
                 "trainer.val_check_interval=2", "data.batch_size=32", "data.eval_batch_size=500",
                 "trainer.limit_val_batches=1", "trainer.limit_test_batches=2"]
    result = run_cli(tmp_path / "runs" / "run", *overrides)
    assert result.code == 0, result.err
    assert result.metrics["latent_dim"] == 16 and result.metrics["test/bpd"] > 0
    eval_main([*overrides, f"ckpt_path={tmp_path / 'runs' / 'run' / 'checkpoints' / 'last.ckpt'}",
               "ood_data=fashion_mnist"])
    capsys.readouterr()
    report_main([str(tmp_path / "runs"), "--paper"])
    out = capsys.readouterr().out
    for column, metric, paper in (("MNIST", "test/bpd", "2.84"), ("F-MNIST", "ood/bpd", "28.59"),
                                  ("RATIO", "ood/ratio", "10.07")):
        assert f"| 4 | F-MLP (LS 16) | {column} | {metric} |" in out and f"| {paper} |" in out


@pytest.mark.parametrize("data, expected", [
    ("cifar10_5bit", (3, 64, 2, 0.2)), ("cifar10_8bit", (3, 96, 4, 0.2)),
    ("imagenet64_5bit", (4, 96, 8, 0.1)), ("imagenet64_8bit", (4, 96, 8, 0.0)),
    ("mnist", (3, 64, 2, 0.2)),  # no Table 7 column: ImageFlowConfig's defaults
])
@pytest.mark.parametrize("model", ["nsf", "f_nsf", "glow", "f_glow"])
def test_image_models_default_to_table7_for_the_data_set(model, data, expected):
    image = compose_config([f"model={model}", f"data={data}"]).model.image
    assert (image.levels, image.hidden_channels, image.num_bins, image.dropout) == expected


def test_table7_defaults_give_way_to_overrides():
    cfg = compose_config(["model=nsf", "data=imagenet64_8bit", "model.image.hidden_channels=32"])
    assert cfg.model.image.hidden_channels == 32 and cfg.model.image.levels == 4




#: the drf/ files on the embedded digits (1 x 8 x 8), cut to a tiny model and 2 steps
DRF_TINY = ["data=digits", "model.image.levels=2", "model.image.hidden_channels=8", "model.image.num_res_blocks=1",
            "model.image.steps_per_level=1", "trainer.max_steps=2", "trainer.val_check_interval=2",
            "data.batch_size=32", "data.eval_batch_size=256", "eval.is_samples=4", "eval.plot=false",
            "eval.temperatures=[1.0]", "eval.num_samples=16"]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("model", DRF_MODELS)
def test_drf_experiments_run_two_steps_on_digits(run_cli, tmp_path, model):
    extra = {"realnvp_ldmask": ["model.stage1_steps=2"], "glow": ["model.image.levels=2"],
             "flow_vae": ["model.latent_dim=null"]}.get(model, [])
    result = run_cli(tmp_path / "run", f"experiment=drf/cifar10_{model}", *DRF_TINY, *extra)
    assert result.code == 0, result.err
    metrics = result.metrics
    assert metrics["steps"] == 2 and metrics["exact"] is (model != "flow_vae")
    assert metrics["data_dim"] == 64 and metrics["test/bpd"] > 0
    if model == "flow_vae":  # bound (11) and its importance-weighted estimate (4 samples here)
        assert metrics["latent_dim"] == 16 and metrics["is_samples"] == 4
        assert metrics["test/nll_elbo"] >= metrics["test/nll"] - 1e-3
    else:
        assert metrics["latent_dim"] == 64 and metrics["test/nll_elbo"] is None
