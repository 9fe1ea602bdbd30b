"""``funnelrun-eval``: per-example likelihoods on in-distribution and OOD test splits, BPD ratio and
AUROC (funnels paper Table 4), into a new directory."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import funnelrun
from funnelrun.builder import load_model
from funnelrun.cli import eval_main as main
from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.anomaly import auroc, check_comparable
from funnelrun.pipelines.anomaly import ood_config, split_argv

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

VAE_TINY = [o for o in TINY if o.startswith(("data.", "trainer.", "eval."))] + [
    "model=vae", "model.hidden_features=16", "model.depth=1", "eval.is_samples=8",
]


def test_auroc_counts_ties_as_one_half():
    # pairs (in, ood) with ood > in: 0<1, 0<2, 1<2, 1<3 ... by hand: in = [0, 1, 1], ood = [1, 2]
    # ood 1: beats 0, ties 1 and 1 -> 1 + 0.5 + 0.5 = 2; ood 2: beats all 3 -> 3; (2 + 3) / 6
    assert auroc(np.array([0.0, 1.0, 1.0]), np.array([1.0, 2.0])) == pytest.approx(5 / 6)
    assert auroc(np.array([5.0, 5.0]), np.array([5.0])) == 0.5
    assert auroc(np.array([1.0, 2.0]), np.array([0.0, -np.inf])) == 0.0
    assert auroc(np.array([1.0]), np.array([np.inf])) == 1.0


def test_auroc_agrees_with_sklearn_on_tied_scores():
    rng = np.random.default_rng(0)
    in_scores, ood_scores = rng.integers(0, 20, 300).astype(float), rng.integers(5, 25, 200).astype(float)
    labels = np.r_[np.zeros(300), np.ones(200)]
    expected = roc_auc_score(labels, np.r_[in_scores, ood_scores])
    assert auroc(in_scores, ood_scores) == pytest.approx(expected, abs=1e-12)


def test_auroc_refuses_nan_scores():
    with pytest.raises(FunnelrunError, match="NaN"):
        auroc(np.array([np.nan, 1.0]), np.array([2.0]))


def test_ood_option_replaces_the_data_option_and_takes_its_own_overrides():
    overrides, name, ood = split_argv(["data=mnist", "data.bits=5", "ood_data=fashion_mnist", "ood.data_dir=/x", "seed=1"])
    assert overrides == ["data=mnist", "data.bits=5", "seed=1"] and name == "fashion_mnist"
    assert ood == ["data.data_dir=/x"]
    with pytest.raises(FunnelrunError, match="ood_data"):
        split_argv(["data=mnist"])


def test_ood_set_reads_with_the_runs_data_settings():
    """The OOD option takes the run's values of the keys both data configs have (bits, data_dir,
    batch sizes), then the data.* overrides that may change (both sets), then ood.* (OOD only)."""
    run_cfg = funnelrun.compose(["data=mnist", "data.bits=5", "data.data_dir=/runs/data", "data.eval_batch_size=64"])
    ood = ood_config(run_cfg, "fashion_mnist", ["data.num_workers=2"], ["data.data_dir=/other"])
    assert (ood.data.name, ood.data.bits, ood.data.eval_batch_size) == ("fashion_mnist", 5, 64)
    assert ood.data.data_dir == "/other" and ood.data.num_workers == 2


class _Fake(FunnelDataModule):
    def __init__(self, shape, bits):
        super().__init__(batch_size=1, eval_batch_size=1, seed=0)
        self.data_shape, self.bits = shape, bits


def test_ood_set_must_have_the_model_shape_and_bits():
    mnist = _Fake((1, 28, 28), 8)
    check_comparable(mnist, _Fake((1, 28, 28), 8), "fashion_mnist")
    with pytest.raises(FunnelrunError, match=r"shape \(3, 32, 32\).*\(1, 28, 28\)"):
        check_comparable(mnist, _Fake((3, 32, 32), 8), "cifar10")
    with pytest.raises(FunnelrunError, match="5 bits"):
        check_comparable(mnist, _Fake((1, 28, 28), 5), "fashion_mnist")


def _eval_dirs(run_dir):
    return sorted((run_dir / "eval").glob("*"))


def test_exact_model_scores_both_test_splits(run_cli, tmp_path, capsys):
    assert run_cli(tmp_path / "run", *TINY).code == 0  # an F-NSF on four circles
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    args = [*TINY, f"ckpt_path={ckpt}", "ood_data=two_moons"]
    main(args)
    main(args)  # a second evaluation writes a second directory
    first, second = _eval_dirs(tmp_path / "run")
    metrics = json.loads((first / "eval_metrics.json").read_text())
    assert metrics["exact"] is True and metrics["is_samples"] is None and metrics["ood_data"] == "two_moons"
    assert metrics["test/examples"] == metrics["ood/examples"] == 300  # data.n_test applies to both sets
    assert metrics["test/bpd"] is metrics["ood/bpd"] is metrics["ood/ratio"] is None  # continuous data
    assert metrics["test/nll_elbo"] is metrics["ood/auroc_is"] is metrics["ood/ratio_is"] is None
    assert json.loads((second / "eval_metrics.json").read_text()) == metrics

    # the scores are the model's per-example NLLs, and the AUROC is P(NLL_ood > NLL_test)
    scores = torch.load(first / "scores.pt")
    _, datamodule, model = load_model([*TINY, f"ckpt_path={ckpt}"])
    with torch.no_grad():
        nll = -model.log_prob(datamodule.test.data).double()
    assert torch.allclose(scores["test"], nll, atol=1e-5)
    assert metrics["test/nll"] == pytest.approx(nll.mean().item(), abs=1e-5)
    assert metrics["ood/nll"] == pytest.approx(scores["ood"].mean().item(), abs=1e-9)
    pairs = (scores["ood"][:, None] > scores["test"][None]).double() + 0.5 * (scores["ood"][:, None] == scores["test"][None])
    assert metrics["ood/auroc"] == pytest.approx(pairs.mean().item(), abs=1e-12)
    assert "AUROC" in capsys.readouterr().out


def test_bound_model_reports_the_importance_weighted_estimate_beside_the_elbo(run_cli, tmp_path):
    assert run_cli(tmp_path / "run", *VAE_TINY).code == 0
    main([*VAE_TINY, f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "ood_data=checkerboard"])
    (out,) = _eval_dirs(tmp_path / "run")
    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert metrics["exact"] is False and metrics["is_samples"] == 8
    # the estimate is the bound's log-mean-exp (above it on average: tests/evaluation/test_importance.py);
    # after 6 steps q is near the prior and the two are close
    for split in ("test", "ood"):
        assert metrics[f"{split}/nll"] < metrics[f"{split}/nll_elbo"] + 0.05
    # the paper's VAE score is the ELBO (Table 4): ood/auroc ranks by it, ood/auroc_is by the estimate
    scores = torch.load(out / "scores.pt")
    assert metrics["test/nll_elbo"] == pytest.approx(scores["test_elbo"].mean().item(), abs=1e-9)
    assert metrics["ood/auroc"] == pytest.approx(auroc(scores["test_elbo"].numpy(), scores["ood_elbo"].numpy()))
    assert metrics["ood/auroc_is"] == pytest.approx(auroc(scores["test"].numpy(), scores["ood"].numpy()))
    assert not torch.equal(scores["test"], scores["test_elbo"])
    assert metrics["ood/ratio"] is metrics["ood/ratio_is"] is None  # continuous data: no BPD


def test_errors_name_the_fix(run_cli, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*TINY, "ood_data=two_moons"])
    assert info.value.code == 2 and "ckpt_path" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([*TINY, "ckpt_path=x.ckpt"])
    assert info.value.code == 2 and "ood_data=<data option>" in capsys.readouterr().err


DIGITS_VAE = [
    "data=digits", "data.batch_size=32", "model=vae", "model.latent_dim=4", "model.channels=[4,8]",
    "model.blocks_per_stage=1", "trainer.max_steps=4", "trainer.val_check_interval=2", "eval.is_samples=4",
]


def test_image_model_reports_bits_per_dim_and_their_ratio(run_cli, tmp_path, capsys):
    """digits against itself (the only file-free image set): a BPD ratio near 1 and an AUROC near
    1/2; a different bit depth is refused."""
    assert run_cli(tmp_path / "run", *DIGITS_VAE).code == 0
    args = [*DIGITS_VAE, f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "ood_data=digits"]
    main(args)
    (out,) = _eval_dirs(tmp_path / "run")
    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert metrics["test/examples"] == metrics["ood/examples"] == 360
    for split in ("test", "ood"):  # BPD = NLL / (D ln 2), D = 64
        assert metrics[f"{split}/bpd"] == pytest.approx(metrics[f"{split}/nll"] / (64 * np.log(2)), rel=1e-12)
        assert metrics[f"{split}/bpd_elbo"] == pytest.approx(metrics[f"{split}/nll_elbo"] / (64 * np.log(2)), rel=1e-12)
    # a VAE: the ratio of the ELBO BPDs (the paper's), the importance-weighted one beside it
    assert metrics["ood/ratio"] == pytest.approx(metrics["ood/bpd_elbo"] / metrics["test/bpd_elbo"], rel=1e-12)
    assert metrics["ood/ratio_is"] == pytest.approx(metrics["ood/bpd"] / metrics["test/bpd"], rel=1e-12)
    assert abs(metrics["ood/ratio"] - 1) < 0.01 and abs(metrics["ood/auroc"] - 0.5) < 0.05
    assert "ratio" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main([*args, "ood.bits=5"])
    assert info.value.code == 2 and "5 bits but the model's data has 4" in capsys.readouterr().err


def test_exact_image_model_scores_by_log_p_with_no_elbo_keys(run_cli, tmp_path):
    """An exact model on images: the ratio and AUROC of log p(x); the ELBO and IS keys are null."""
    args = ["data=digits", "data.batch_size=32", "model=f_mlp", "model.latent_dim=4", "model.widths=[16,4]",
            "model.conditional_hidden_features=8", "trainer.max_steps=2", "trainer.val_check_interval=2"]
    assert run_cli(tmp_path / "run", *args).code == 0
    main([*args, f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "ood_data=digits"])
    (out,) = _eval_dirs(tmp_path / "run")
    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert metrics["exact"] is True and metrics["ood/ratio"] == pytest.approx(metrics["ood/bpd"] / metrics["test/bpd"])
    assert metrics["test/bpd_elbo"] is metrics["ood/bpd_elbo"] is metrics["ood/ratio_is"] is metrics["ood/auroc_is"] is None
