"""funnelrun-export: the exported files give the model's log-likelihoods without funnelrun, spline
tails included; only exact models are exported, and nothing is overwritten."""
from __future__ import annotations

import pytest
import torch

import funnelrun
from funnelrun.cli import export_main

from conftest import TINY, TINY_NSF

pytestmark = pytest.mark.usefixtures("one_thread")


def _test_split_and_tails(run) -> torch.Tensor:
    """The whole test split, plus points beyond the splines' tail bound (|x| up to 4x the data)."""
    run.datamodule.setup("test")
    test = torch.cat(list(run.datamodule.test_dataloader()))
    far = test[:64] * 4.0
    return torch.cat([test, far])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny trained NSF and F-NSF on four circles (trained once for this file)."""
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from funnelrun.cli import main

    out = {}
    root = tmp_path_factory.mktemp("export")
    for name, overrides in (("nsf", [*TINY_NSF, "model=nsf"]), ("f_nsf", TINY)):
        GlobalHydra.instance().clear()
        argv = sys.argv
        sys.argv = ["funnelrun", f"hydra.run.dir={root / name}", *overrides]
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None)
        finally:
            sys.argv = argv
            GlobalHydra.instance().clear()
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", ["nsf", "f_nsf"])
def test_torchscript_export_gives_the_models_log_likelihoods_and_samples(runs, name, capsys):
    export_main([f"ckpt_path={runs[name]}", "export.format=torchscript"])
    (path,) = (runs[name] / "exports").glob("best-step*.pt")
    assert str(path) in capsys.readouterr().out
    run = funnelrun.load_run(runs[name])
    x = _test_split_and_tails(run)
    assert (x.abs() > run.config.model.tail_bound).any()  # the tails are exercised
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        expected = run.model.log_prob(x)
        assert torch.allclose(loaded(x), expected, atol=1e-4, rtol=0)
        assert torch.allclose(loaded.log_prob(x[:5]), expected[:5], atol=1e-4, rtol=0)  # another batch size
        samples = loaded.sample(torch.randn(300, run.model.latent_dim))
    assert samples.shape == (300, 2) and torch.isfinite(samples).all()
    if name == "nsf":  # a bijection: the exported sampler is the model's inverse
        z = torch.randn(50, 2)
        assert torch.allclose(loaded.sample(z), run.model.decode(z), atol=1e-5)


@pytest.mark.parametrize("name", ["nsf", "f_nsf"])
def test_onnx_export_gives_the_models_log_likelihoods_in_onnxruntime(runs, name):
    import onnxruntime as ort  # the `export` extra, which make test installs
    export_main([f"ckpt_path={runs[name]}", "export.format=onnx"])
    (path,) = (runs[name] / "exports").glob("best-step*.onnx")
    run = funnelrun.load_run(runs[name])
    x = _test_split_and_tails(run)
    session = ort.InferenceSession(str(path))
    (log_p,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = run.model.log_prob(x)
    assert torch.allclose(torch.from_numpy(log_p), expected, atol=1e-4, rtol=0)


def test_an_export_is_never_overwritten_and_bound_models_are_refused(run_cli, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli(run_dir, *TINY_NSF, "model=nsf").code == 0
    out = tmp_path / "model.pt"
    export_main([f"ckpt_path={run_dir}", f"export.out={out}"])
    before = out.read_bytes()
    with pytest.raises(SystemExit) as stop:
        export_main([f"ckpt_path={run_dir}", f"export.out={out}"])
    assert stop.value.code == 2 and "never overwritten" in capsys.readouterr().err
    assert out.read_bytes() == before

    vae = tmp_path / "vae"
    data_only = [o for o in TINY_NSF if not o.startswith("model.")]
    assert run_cli(vae, *data_only, "model=vae", "model.hidden_features=8", "eval.is_samples=4").code == 0
    with pytest.raises(SystemExit) as stop:
        export_main([f"ckpt_path={vae}"])
    assert stop.value.code == 2 and "exact: false" in capsys.readouterr().err


def test_bad_arguments_say_what_is_allowed(capsys):
    with pytest.raises(SystemExit) as stop:
        export_main(["export.fromat=onnx", "ckpt_path=x"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "export.fromat" in err and "export.format" in err
    export_main(["--help"])
    out = capsys.readouterr().out
    assert "usage: funnelrun-export" in out and "export.format" in out
