"""``funnelrun-check``: the exactness certificate, printed as one JSON object on the last line."""
from __future__ import annotations

import json

import pytest
import torch

from funnelrun.cli import check_main
from funnelrun.evaluation.certificate import certify
from funnelrun.models.image_f_nsf import build_image_f_nsf
from funnelrun.surjections.conv_funnel import ConvFunnel
from funnelrun.surjections.image_coupling_funnel import ImageCouplingFunnel
from funnelrun.surjections.maxpool import MaxPool

from conftest import TINY, TINY_NSF


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.mark.parametrize("overrides", [TINY, ["model=nsf", *TINY_NSF]], ids=["f_nsf", "nsf"])
def test_check_on_an_untrained_model(capsys, overrides):
    check_main(list(overrides))
    result = _last_json(capsys)
    assert set(result) == {"roundtrip_max_abs_err", "logdet_max_abs_err", "density_integral", "exact"}
    assert result["exact"] is True
    assert result["roundtrip_max_abs_err"] < 1e-4
    assert result["logdet_max_abs_err"] < 1e-3
    assert result["density_integral"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("how", ["file with the run's overrides", "run directory alone", "hydra.run.dir + last"])
def test_check_on_a_trained_checkpoint(run_cli, capsys, tmp_path, how):
    run = run_cli(tmp_path / "run", *TINY)
    assert run.code == 0, run.err
    args = {
        "file with the run's overrides": [*TINY, f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"],
        "run directory alone": [f"ckpt_path={tmp_path / 'run'}"],
        "hydra.run.dir + last": [f"hydra.run.dir={tmp_path / 'run'}", "ckpt_path=last"],
    }[how]
    capsys.readouterr()
    check_main(args)
    result = _last_json(capsys)
    assert result["roundtrip_max_abs_err"] < 1e-4
    assert result["density_integral"] == pytest.approx(1.0, abs=0.02)


def test_check_with_another_models_settings_names_only_what_differs(run_cli, capsys, tmp_path):
    assert run_cli(tmp_path / "run", *TINY).code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        check_main(["model=nsf", *TINY_NSF, f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("funnelrun-check: error: the run in")
    assert "model._target_: the run has 'funnelrun.models.f_nsf.build_f_nsf', this command " \
           "'funnelrun.models.nsf.build_nsf' (model=nsf)" in err
    # the settings both have alike are not listed (no dump of the two model configs)
    assert "hidden_features" not in err and "num_bins" not in err


def test_check_with_a_misspelt_key_fails_clearly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        check_main(["model.bnis=3"])
    assert exit_info.value.code != 0
    assert "bnis" in capsys.readouterr().err


def test_check_of_a_bound_model_reports_no_density_integral(capsys):
    check_main(["model=vae", "model.hidden_features=8", "model.depth=1", *[o for o in TINY if o.startswith("data.")]])
    result = _last_json(capsys)
    assert result["exact"] is False and result["density_integral"] is None
    # a VAE has no bijective part and no funnel: nothing was checked, which is null, not an error of 0
    assert result["roundtrip_max_abs_err"] is None and result["logdet_max_abs_err"] is None


def test_help_lists_the_tools_options(capsys):
    check_main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("funnelrun-check:") and "ckpt_path=<run dir>" in out and "null" in out


# -- images: the convolutional funnel and the max-pool surjection ----------------------------------
DIGITS_TINY_IMAGE = [
    "data=digits", "model.image.levels=1", "model.image.steps_per_level=1", "model.image.hidden_channels=8",
    "model.image.num_res_blocks=1",
]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("funnel", ["conv", "maxpool", "coupling"])
def test_check_of_an_image_funnel_model(capsys, funnel):
    check_main(["model=f_nsf", "model.latent_dim=null", f"model.image.funnel={funnel}",
                "model.image.conditional_hidden_features=8", *DIGITS_TINY_IMAGE])
    result = _last_json(capsys)
    assert result["exact"] is True and result["density_integral"] is None  # 64-D data: no grid
    assert result["roundtrip_max_abs_err"] < 1e-4
    assert result["logdet_max_abs_err"] < 1e-3


FUNNEL_KINDS = {ConvFunnel: "conv", MaxPool: "maxpool", ImageCouplingFunnel: "coupling"}


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("funnel", [ConvFunnel, MaxPool, ImageCouplingFunnel])
def test_check_catches_an_image_funnel_that_is_no_right_inverse(monkeypatch, funnel):
    model = build_image_f_nsf((1, 8, 8), image=dict(levels=1, steps_per_level=1, hidden_channels=8, num_res_blocks=1,
                                                    conditional_hidden_features=8, funnel=FUNNEL_KINDS[funnel]))
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert certify(model, x)["roundtrip_max_abs_err"] < 1e-4
    inverse = funnel.inverse
    monkeypatch.setattr(funnel, "inverse", lambda self, z, *args, **kwargs: inverse(self, z, *args, **kwargs) + 0.1)
    assert certify(model, x)["roundtrip_max_abs_err"] > 0.05


@pytest.mark.usefixtures("one_thread")
def test_check_of_an_image_vflow_reports_a_bound(capsys):
    check_main(["model=vflow", "model.image.augment_channels=1", "model.image.q_hidden_channels=8", *DIGITS_TINY_IMAGE])
    result = _last_json(capsys)
    assert result["exact"] is False and result["density_integral"] is None
    assert result["roundtrip_max_abs_err"] < 1e-4 and result["logdet_max_abs_err"] < 1e-3


@pytest.mark.usefixtures("one_thread")
def test_check_of_a_generative_funnel_model(capsys, monkeypatch):
    """G^{-1} given a sample of q is checked (round trip, autograd log-det), and inverse(forward(x)) == x;
    an inverse that misses x is caught."""
    from funnelrun.surjections.generative_funnel import GenerativeFunnel

    overrides = ["model=vflow", "model.augment_layer=generative_funnel", "model.num_steps=1", *TINY_NSF]
    check_main(overrides)
    result = _last_json(capsys)
    assert result["exact"] is False and result["density_integral"] is None
    assert result["roundtrip_max_abs_err"] < 1e-4 and result["logdet_max_abs_err"] < 1e-3
    inverse = GenerativeFunnel.inverse
    monkeypatch.setattr(GenerativeFunnel, "inverse", lambda self, z, *a, **k: inverse(self, z, *a, **k) + 0.1)
    check_main(overrides)
    assert _last_json(capsys)["roundtrip_max_abs_err"] > 0.05
