"""The papers' experiments as ``experiment=`` configs: every file composes, passes validation and
builds the model the paper describes (latent size); the ones whose data is embedded (or present
in ../shared/data) run with a tiny-steps override."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

import funnelrun.conf
from funnelrun.config import compose_config
from funnelrun.validation import validate_config

from conftest import TINY

EXPERIMENT_DIR = Path(funnelrun.conf.__file__).parent / "experiment"
EXPERIMENTS = sorted(str(p.relative_to(EXPERIMENT_DIR).with_suffix("")) for p in EXPERIMENT_DIR.rglob("*.yaml"))
#: data shapes (funnels paper Table 5 dimensions; image sizes), so models build without the files
SHAPES = {
    "power": (6,), "gas": (8,), "hepmass": (21,), "miniboone": (43,), "bsds300": (63,),
    "cifar10": (3, 32, 32), "imagenet64": (3, 64, 64), "mnist": (1, 28, 28), "checkerboard": (2,),
}
#: Table 5 dimension reductions: the funnel models of Table 1 have latent D - reduction
REDUCTION = {"power": 2, "gas": 2, "hepmass": 5, "miniboone": 10, "bsds300": 15}
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_the_tables_are_all_there():
    tables = {e.split("/")[0] for e in EXPERIMENTS if "/" in e}
    assert tables == {"table1", "table2", "table4"}
    assert sum(e.startswith("table1/") for e in EXPERIMENTS) == 5 * 6  # 5 data sets x 6 models
    assert sum(e.startswith("table2/") for e in EXPERIMENTS) == 4 * 4  # 4 data sets x 4 models
    assert sum(e.startswith("table4/") for e in EXPERIMENTS) == 7


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
    return -1


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_validates_and_builds(name):
    cfg = compose_config([f"experiment={name}"])
    validate_config(cfg)
    data = next(k for k in SHAPES if cfg.data.name.startswith(k))
    shape = SHAPES[data]
    model = instantiate(cfg.model, data_shape=shape)
    expected = _expected_latent(name, data, shape)
    if expected > 0:
        assert model.latent_dim == expected


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
def test_table4_f_mlp_runs_on_real_mnist_with_tiny_steps(run_cli, tmp_path):
    result = run_cli(
        tmp_path / "run", "experiment=table4/mnist_f_mlp_16", f"data.data_dir={SHARED_DATA}", "trainer.max_steps=2",
        "trainer.val_check_interval=2", "data.batch_size=32", "data.eval_batch_size=500",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=2",
    )
    assert result.code == 0, result.err
    assert result.metrics["latent_dim"] == 16 and result.metrics["test/bpd"] > 0


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


def test_table4_nsf_has_table8s_parameter_count():
    """Funnels paper Table 8: the MNIST NSF of Table 4 has 4,724,430 parameters."""
    model = instantiate(compose_config(["experiment=table4/mnist_nsf"]).model, data_shape=SHAPES["mnist"])
    assert sum(p.numel() for p in model.parameters()) == 4_724_430
