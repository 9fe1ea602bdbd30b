"""Property test: no combination of command-line overrides crashes without a clear message.

Random overrides (valid and misspelt keys and group options, values of every type) go through the
same path as `funnelrun` up to training: compose, validate, build the data and the model. Each
either succeeds or raises a FunnelrunError (what the CLI prints as `funnelrun: error: ...`) or a
builder's ValueError wrapped by Hydra's instantiate (printed the same way). Anything else —
TypeError, RuntimeError, ZeroDivisionError, a raw Hydra traceback — is a bug.
"""
from __future__ import annotations

import torch
from hydra.errors import InstantiationException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnelrun.builder import build_data, build_model
from funnelrun.config import compose_config
from funnelrun.errors import FunnelrunError
from funnelrun.validation import validate_config

MODEL_KEYS = ["num_steps", "transform", "hidden_features", "num_blocks", "num_bins", "tail_bound", "dropout",
              "latent_dim", "dim_reduction", "funnel_level", "conditional", "linear", "hiden_features",
              "augment_dim", "depth"]
DATA_KEYS = ["name", "n_train", "n_val", "n_test", "batch_size", "seed", "data_dir", "n_tarin"]
OTHER_KEYS = ["seed", "optim.lr", "optim.weight_decay", "trainer.max_steps", "trainer.val_check_interval",
              "eval.grid_points", "sed", "ckpt_path"]
GROUPS = {"model": ["nsf", "f_nsf", "f_mlp", "vae", "glow", "vflow", "nsff", ""],
          "data": ["four_circles", "checkerboard", "two_moons", "power", "four_circle", ""]}
VALUES = st.one_of(
    st.integers(-3, 40).map(str), st.floats(-5, 50, allow_nan=False).map(lambda f: f"{f:.3g}"),
    st.sampled_from(["null", "true", "abc", "[1,2]", "{a: 1}", "''", "coupling", "autoregressive", "gaussian",
                     "1e-3", "nan", "inf", "-inf", "/nonexistent"]),
)
KEYS = st.one_of(
    st.sampled_from(MODEL_KEYS).map(lambda k: f"model.{k}"),
    st.sampled_from(DATA_KEYS).map(lambda k: f"data.{k}"),
    st.sampled_from(OTHER_KEYS),
)
OVERRIDE = st.one_of(
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.sampled_from(sorted(GROUPS)).flatmap(lambda g: st.sampled_from(GROUPS[g]).map(lambda o: f"{g}={o}")),
)
#: keeps every build small and fast whatever else is drawn (later overrides win)
SMALL = ["data.n_train=300", "data.n_val=100", "data.n_test=100"]


def _build(overrides: list[str]) -> None:
    cfg = compose_config(overrides)
    validate_config(cfg)
    datamodule = build_data(cfg)
    model = build_model(cfg, datamodule)
    with torch.no_grad():
        model.eval()
        model.log_prob(torch.zeros(2, *datamodule.data_shape))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OVERRIDE, min_size=1, max_size=4))
def test_random_overrides_succeed_or_fail_clearly(overrides):
    try:
        _build([*SMALL, *overrides])
    except FunnelrunError as exc:
        assert str(exc).strip()
    except InstantiationException as exc:
        assert isinstance(exc.__cause__, (ValueError, FunnelrunError)), repr(exc.__cause__)
        assert str(exc.__cause__).strip()
