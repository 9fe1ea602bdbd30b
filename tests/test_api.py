"""The Python API (funnelrun/api.py): its docstring examples, the README's Python section run as
written on a tiny finished run, and the errors a notebook user meets."""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
import torch

import funnelrun
import funnelrun.api
from funnelrun.errors import FunnelrunError

from conftest import TINY, TINY_NSF

README = Path(__file__).resolve().parents[1] / "README.md"
README_RUN = "outputs/2026-11-22/10-00-00-123456"

pytestmark = pytest.mark.usefixtures("one_thread")


def _python_section() -> str:
    section = README.read_text().split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def test_docstring_examples_run():
    result = doctest.testmod(funnelrun.api, verbose=False)
    assert result.attempted >= 5 and result.failed == 0


def test_readme_python_section_runs_as_written(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(run_dir, *TINY).code == 0
    code = _python_section()
    assert README_RUN in code
    scope: dict = {}
    exec(compile(code.replace(README_RUN, str(run_dir)), "README.md#python", "exec"), scope)
    model, x = scope["model"], scope["x"]
    assert scope["log_p"].shape == (8,) and torch.isfinite(scope["log_p"]).all()
    assert scope["samples"].shape == (16, 2)
    assert scope["z"].shape == (8, model.latent_dim) == (8, 1)
    # a funnel's decode is its right inverse: encoding the decoded latent gives it back
    assert torch.allclose(model.encode(scope["x_mean"]), scope["z"], atol=1e-4)
    assert scope["untrained"].latent_dim == 2
    # the loaded weights are the run's: its test NLL recomputed over the whole test split
    data = scope["data"]
    with torch.no_grad():
        total = sum(-model.log_prob(b).double().sum() for b in data.test_dataloader())
    assert float(total / len(data.test)) == pytest.approx(scope["run"].metrics["test/nll"], abs=1e-5)
    assert x.shape == (8, 2)


def test_bijective_flow_decodes_its_encoding(run_cli, tmp_path):
    run_dir = tmp_path / "nsf"
    assert run_cli(run_dir, *TINY_NSF, "model=nsf").code == 0
    run = funnelrun.load_run(run_dir, checkpoint="last")
    assert run.checkpoint.name == "last.ckpt"
    x = torch.randn(32, 2)
    assert torch.allclose(run.model.decode(run.model.encode(x)), x, atol=1e-4)


def test_bound_models_have_no_encode():
    model, _ = funnelrun.build(funnelrun.compose(["model=vae", "model.hidden_features=8"]))
    assert not model.exact
    with pytest.raises(TypeError, match="exact"):
        model.encode(torch.randn(4, 2))
    with pytest.raises(TypeError, match="exact"):
        model.decode(torch.randn(4, 1))


def test_load_run_takes_a_checkpoint_file_and_overrides(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(run_dir, *TINY).code == 0
    (best,) = (run_dir / "checkpoints").glob("best-step*.ckpt")
    run = funnelrun.load_run(best, overrides=["data.n_test=50"])
    assert run.path == run_dir and run.checkpoint == best
    run.datamodule.setup("test")
    assert len(run.datamodule.test) == 50


def test_compose_raises_the_cli_errors():
    with pytest.raises(FunnelrunError, match="hiden_features"):
        funnelrun.compose(["model.hiden_features=3"])
    with pytest.raises(FunnelrunError, match="f_nfs"):
        funnelrun.compose(["model=f_nfs"])


def test_load_run_errors_are_clear(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(run_dir, *TINY).code == 0
    with pytest.raises(FunnelrunError, match="neither a run directory nor a checkpoint"):
        funnelrun.load_run(tmp_path / "nowhere")
    corrupt = run_dir / "checkpoints" / "last.ckpt"
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    with pytest.raises(FunnelrunError, match="could not read checkpoint"):
        funnelrun.load_run(corrupt)
    lonely = tmp_path / "copied" / "checkpoints"
    lonely.mkdir(parents=True)
    (best,) = (run_dir / "checkpoints").glob("best-step*.ckpt")
    (lonely / "x.ckpt").write_bytes(best.read_bytes())
    with pytest.raises(FunnelrunError, match="config.yaml"):
        funnelrun.load_run(lonely / "x.ckpt")


def test_weights_of_another_version_are_refused_with_the_version(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(run_dir, *TINY).code == 0
    (best,) = (run_dir / "checkpoints").glob("best-step*.ckpt")
    checkpoint = torch.load(best, weights_only=False)
    assert checkpoint["funnelrun_version"] == funnelrun.__version__
    # an older release whose layer had another name: same fingerprint, weights that do not fit
    checkpoint["state_dict"] = {k.replace("transform.", "layers.", 1): v for k, v in checkpoint["state_dict"].items()}
    checkpoint["funnelrun_version"] = "0.0.9"
    torch.save(checkpoint, best)
    with pytest.raises(FunnelrunError, match=r"0\.0\.9"):
        funnelrun.load_run(run_dir)
