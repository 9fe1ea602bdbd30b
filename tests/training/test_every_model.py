"""Every `model=` option trains a few steps on a plane set from the CLI and writes finite metrics.

The options are discovered from the shipped config group, so a new model is covered as soon as its
YAML exists. Size-reducing overrides are applied only for the keys a model's schema has.
"""
from __future__ import annotations

import math
from importlib.resources import files

import pytest
from hydra import compose, initialize_config_module

from funnelrun.config import register_configs

MODEL_OPTIONS = sorted(p.name.removesuffix(".yaml") for p in files("funnelrun.conf").joinpath("model").iterdir()
                       if p.name.endswith(".yaml"))

#: shrink whatever a model has of these
SHRINK = {
    "hidden_features": 16, "num_blocks": 1, "num_bins": 4, "conditional_hidden_features": 8,
    "encoder_hidden": 16, "decoder_hidden": 16, "hidden": 16, "depth": 1, "num_steps": 2,
}
#: and switch on whatever training schedule a model has, so its CLI path runs too
SCHEDULES = {"entropy_warmup_steps": 2}
RUN = [
    "data=four_circles", "data.n_train=512", "data.n_val=256", "data.n_test=256", "data.batch_size=64",
    "data.eval_batch_size=128", "trainer.max_steps=4", "trainer.val_check_interval=2",
    "eval.grid_points=16", "eval.num_samples=100",
]


#: image-only models: their CLI runs (on data=digits) are in their own tests
IMAGE_ONLY = {"realnvp_ldmask": "tests/models/test_realnvp_ldmask.py"}


def _overrides(model: str) -> list[str]:
    register_configs()
    with initialize_config_module(config_module="funnelrun.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={model}"])
    shrink = [f"model.{k}={v}" for k, v in {**SHRINK, **SCHEDULES}.items() if k in cfg.model]
    extra = ["eval.is_samples=8"] if "is_samples" in cfg.eval else []
    return [f"model={model}", *shrink, *RUN, *extra]


def test_model_options_are_discovered():
    assert {"nsf", "f_nsf"} <= set(MODEL_OPTIONS)


@pytest.mark.parametrize("model", MODEL_OPTIONS)
def test_every_model_option_trains_and_reports(run_cli, tmp_path, model):
    if model in IMAGE_ONLY:
        pytest.skip(f"images only: its CLI run is in {IMAGE_ONLY[model]}")
    result = run_cli(tmp_path / model, *_overrides(model))
    assert result.code == 0, result.err[-3000:]
    m = result.metrics
    assert math.isfinite(m["test/nll"]) and m["steps"] == 4
    assert m["latent_dim"] >= 1 and m["num_params"] > 0
    assert isinstance(m["exact"], bool)
    if not m["exact"]:
        assert math.isfinite(m["test/nll_elbo"]) and m["is_samples"] >= 1
