"""Sample quality (funnels paper Table 3; funnelrun/evaluation/sample_quality.py): torchmetrics' FID and
Inception score statistics against closed forms, the image conversion checked value by value, the
missing-weights error (raised before anything is sampled, nothing of an earlier eval touched), and
``funnelrun-eval ... eval.sample_quality=true`` end to end on a tiny digits run with the stand-in
network (the Inception weights are not on this machine)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.linalg
import torch

from funnelrun.cli import eval_main
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.sample_quality import (
    INCEPTION_WEIGHTS_NAME,
    INCEPTION_WEIGHTS_URL,
    IS_SPLITS,
    StandinNetwork,
    _torch_fidelity_missing,
    frechet_distance,
    inception_network,
    inception_score,
    missing_weights_message,
    quality_network,
    to_uint8_rgb,
)

from conftest import train_in_process

pytestmark = pytest.mark.usefixtures("one_thread")


# -- FID: the Fréchet distance of the features' means and covariances ------------------------------------
def _with_moments(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> torch.Tensor:
    """n points whose sample mean is exactly ``mean`` and whose (n - 1)-normalised covariance is exactly ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance I
    return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)


def _frechet(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    """||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Dowson and Landau 1982), by scipy's sqrtm."""
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_fid_of_a_set_with_itself_is_zero():
    features = torch.randn(500, 8, dtype=torch.float64)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-5)


def test_fid_of_two_gaussian_sets_is_the_frechet_distance_of_their_moments():
    d = 4
    # isotropic by hand: ||0 - 1||^2 = d, Tr(I + 4I - 2 (4I)^(1/2)) = d (1 + 4 - 4) = d: 2d in all
    a = _with_moments(np.zeros(d), np.eye(d), 400, seed=0)
    b = _with_moments(np.ones(d), 4 * np.eye(d), 300, seed=1)
    assert frechet_distance(a, b) == pytest.approx(2 * d, rel=1e-5)
    # full covariances against scipy's closed form
    rng = np.random.default_rng(2)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    w1, w2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = w1 @ w1.T + 0.5 * np.eye(d), w2 @ w2.T + 0.5 * np.eye(d)
    x, y = _with_moments(m1, s1, 600, seed=3), _with_moments(m2, s2, 500, seed=4)
    expected = _frechet(m1, s1, m2, s2)
    assert expected > 1 and frechet_distance(x, y) == pytest.approx(expected, rel=1e-5)


# -- IS: exp(E KL(p(y|x) || p(y))) over splits ----------------------------------------------------------
def _one_hot_logits(labels: torch.Tensor, classes: int) -> torch.Tensor:
    # softmax: one-hot up to e^-50 (exact zeros would make torchmetrics' 0 * log 0 a NaN)
    return 50 * torch.nn.functional.one_hot(labels, classes).double()


@pytest.mark.filterwarnings(r"ignore:std\(\)")  # one split: its sd is undefined
def test_inception_score_of_one_hot_uniform_predictions_is_the_class_count():
    classes = 7
    labels = torch.arange(70 * classes) % classes
    mean, _ = inception_score(_one_hot_logits(labels, classes), splits=1)
    assert mean == pytest.approx(classes, rel=1e-6)
    # the same prediction for every image: p(y|x) = p(y), KL 0, a score of 1 in every split
    mean, sd = inception_score(torch.randn(classes).expand(200, classes))
    assert (mean, sd) == (pytest.approx(1.0, abs=1e-6), pytest.approx(0.0, abs=1e-6))


def test_inception_score_splits_are_scored_one_by_one():
    """10 random splits (torchmetrics draws them from torch's generator): each split's score is
    exp(entropy of its class histogram) for one-hot predictions; mean and (n - 1) sd over the splits."""
    classes, n = 5, 400
    labels = torch.arange(n) % classes
    torch.manual_seed(11)
    mean, sd = inception_score(_one_hot_logits(labels, classes))
    torch.manual_seed(11)
    order = torch.randperm(n)
    per_split = []
    for chunk in labels[order].chunk(IS_SPLITS):
        p = np.bincount(chunk.numpy(), minlength=classes) / len(chunk)
        per_split.append(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    assert mean == pytest.approx(np.mean(per_split), rel=1e-5)
    assert sd == pytest.approx(np.std(per_split, ddof=1), rel=1e-4)
    assert 1 < mean < classes


# -- images as the network expects them -------------------------------------------------------------------
def test_five_bit_images_become_eight_bit_rgb_exactly():
    levels = torch.arange(32, dtype=torch.float32)
    samples = (levels + 0.5).reshape(1, 1, 4, 8)  # dequantized: level + u
    rgb = to_uint8_rgb(samples, bits=5)
    assert rgb.dtype == torch.uint8 and rgb.shape == (1, 3, 4, 8)
    expected = np.round(np.arange(32) * 255 / 31).astype(np.uint8)  # 0 -> 0, 1 -> 8, ..., 31 -> 255
    for c in range(3):  # one channel tiled to three
        assert np.array_equal(rgb[0, c].flatten().numpy(), expected)
    # out of range and non-finite values: clamped to the n-bit range, NaN to 0
    wild = torch.tensor([-3.0, 40.0, float("nan"), float("inf"), float("-inf")]).reshape(1, 1, 1, 5)
    assert to_uint8_rgb(wild, 5)[0, 0, 0].tolist() == [0, 255, 0, 255, 0]
    # eight bits and three channels: the integers themselves
    x = torch.randint(0, 256, (2, 3, 4, 4)).float() + 0.25
    assert torch.equal(to_uint8_rgb(x, 8), x.floor().to(torch.uint8))
    with pytest.raises(FunnelrunError, match="1 or 3 channels"):
        to_uint8_rgb(torch.zeros(1, 2, 4, 4), 5)


def test_the_standin_network_is_fixed_and_takes_any_image_size():
    a, b = StandinNetwork(), StandinNetwork()
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    (fa, la), (fb, lb) = a(images), b(images)
    assert torch.equal(fa, fb) and torch.equal(la, lb) and fa.shape == (3, 64) and la.shape == (3, 10)
    assert a(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))[0].shape == (2, 64)


# -- the Inception network needs its weights file ---------------------------------------------------------
@pytest.mark.parametrize("weights", [None, "/nonexistent/weights.pth"])
def test_missing_inception_weights_name_the_file_and_how_to_fetch_it(weights):
    with pytest.raises(FunnelrunError) as info:
        inception_network(weights)
    message = str(info.value)
    assert INCEPTION_WEIGHTS_NAME in message and INCEPTION_WEIGHTS_URL in message and "curl -LO" in message
    assert f"eval.inception_weights={weights if weights else 'null'}" in message and "Nothing was sampled" in message
    if _torch_fidelity_missing():  # as here: the vision extra is named too
        assert "pip install 'funnelrun[vision]'" in message
    with pytest.raises(FunnelrunError):
        quality_network("inception", weights)


def test_the_message_names_the_vision_extra_only_where_it_is_missing():
    assert "funnelrun[vision]" in missing_weights_message("w.pth", vision_missing=True)
    message = missing_weights_message("w.pth", vision_missing=False)
    assert "funnelrun[vision]" not in message and "eval.inception_weights=w.pth: no such file" in message


#: the FID Inception weights file where a machine has it (and torch-fidelity: funnelrun[vision]); not here
INCEPTION_WEIGHTS = os.environ.get("FUNNELRUN_INCEPTION_WEIGHTS")


@pytest.mark.skipif(INCEPTION_WEIGHTS is None or _torch_fidelity_missing(),
                    reason="needs torch-fidelity (pip install 'funnelrun[vision]') and FUNNELRUN_INCEPTION_WEIGHTS="
                           f"<path to {INCEPTION_WEIGHTS_NAME}>")
def test_the_inception_network_gives_pool_features_and_logits():
    network = inception_network(INCEPTION_WEIGHTS)
    assert (network.name, network.num_features) == ("inception", 2048)
    images = to_uint8_rgb(torch.rand(12, 3, 32, 32) * 32, bits=5)
    with torch.no_grad():
        features, logits = network.module(images)
    assert features.shape == (12, 2048) and logits.shape == (12, 1008)
    assert frechet_distance(features.double(), features.double()) == pytest.approx(0.0, abs=1e-3)


# -- funnelrun-eval end to end ----------------------------------------------------------------------------
DIGITS_F_MLP = ["data=digits", "data.batch_size=32", "model=f_mlp", "model.latent_dim=4", "model.widths=[16,4]",
                "model.conditional_hidden_features=8", "trainer.max_steps=2", "trainer.val_check_interval=2",
                "eval.plot=false"]


def _eval_dirs(run_dir):
    return sorted((run_dir / "eval").iterdir()) if (run_dir / "eval").is_dir() else []


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A tiny exact model of the digits, trained 2 steps (this module's runs add their eval/ directories)."""
    return train_in_process(tmp_path_factory.mktemp("quality") / "run", DIGITS_F_MLP)


def _standin_args(run_dir):
    return [f"ckpt_path={run_dir}", "eval.sample_quality=true", "eval.quality_network=standin",
            "eval.quality_samples=120", "eval.quality_batch_size=50", "eval.temperatures=[0.5,1.0]"]


def test_funnelrun_eval_writes_sample_quality_per_temperature(digits_run, tmp_path, capsys):
    run_dir = digits_run
    args = _standin_args(run_dir)
    earlier = _eval_dirs(run_dir)
    eval_main(args)
    out = capsys.readouterr().out
    (first,) = [d for d in _eval_dirs(run_dir) if d not in earlier]
    metrics = json.loads((first / "eval_metrics.json").read_text())
    # the stand-in's numbers are never written as FID or IS
    assert metrics["sample/fid"] is None and metrics["sample/inception_score"] is None
    assert metrics["sample/quality_network"] == "standin" and "STAND-IN" in out
    assert set(metrics["sample/standin_fid"]) == set(metrics["sample/standin_inception_score"]) == {"0.5", "1.0"}
    assert all(v > 0 for v in metrics["sample/standin_fid"].values())
    assert all(s["mean"] >= 1 - 1e-6 and s["sd"] >= 0 for s in metrics["sample/standin_inception_score"].values())
    # the reference: the whole training split (1,437 digits, the 200 held out for validation included)
    assert metrics["sample/quality_samples"] == 120 and metrics["sample/reference_examples"] == 1437
    assert metrics["sample/nonfinite_samples"] == {"0.5": 0, "1.0": 0}
    assert "ood/auroc" not in metrics and not (first / "scores.pt").exists()
    # the same seed draws the same samples: the same numbers again, in a new directory
    eval_main(args)
    second = [d for d in _eval_dirs(run_dir) if d != first and d not in earlier]
    assert len(second) == 1
    again = json.loads((second[0] / "eval_metrics.json").read_text())
    assert again["sample/standin_fid"] == metrics["sample/standin_fid"]

    # the Inception network without its weights: a clear error, exit 2, nothing sampled or written
    before = {d: (d / "eval_metrics.json").read_bytes() for d in _eval_dirs(run_dir)}
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        eval_main([f"ckpt_path={run_dir}", "eval.sample_quality=true", f"eval.inception_weights={tmp_path / 'w.pth'}"])
    captured = capsys.readouterr()
    assert info.value.code == 2 and "funnelrun-eval: error:" in captured.err and INCEPTION_WEIGHTS_NAME in captured.err
    assert "sample quality: the training split" not in captured.out + captured.err
    assert {d: (d / "eval_metrics.json").read_bytes() for d in _eval_dirs(run_dir)} == before


def test_with_ood_data_too_both_go_into_one_eval_metrics_file(digits_run):
    earlier = _eval_dirs(digits_run)
    eval_main([*_standin_args(digits_run), "ood_data=digits"])
    (both,) = [d for d in _eval_dirs(digits_run) if d not in earlier]
    metrics = json.loads((both / "eval_metrics.json").read_text())
    assert metrics["ood_data"] == "digits" and 0 <= metrics["ood/auroc"] <= 1 and (both / "scores.pt").is_file()
    assert metrics["test/examples"] == 360 and set(metrics["sample/standin_fid"]) == {"0.5", "1.0"}


def test_sample_quality_of_a_model_of_vectors_is_refused_clearly():
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from funnelrun.pipelines.sample_quality import prepare_network

    cfg = OmegaConf.create({"data": {"name": "four_circles"}, "eval": {"quality_network": "standin"}})
    with pytest.raises(FunnelrunError, match="four_circles, which are not images"):
        prepare_network(cfg, SimpleNamespace(datamodule=object(), path="run"))  # type: ignore[arg-type]


def test_without_ood_data_or_sample_quality_the_error_names_both(capsys):
    with pytest.raises(SystemExit) as info:
        eval_main(["ckpt_path=x"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "ood_data=<data option>" in err and "eval.sample_quality=true" in err


def test_the_sample_quality_settings_are_checked_before_anything_runs():
    from funnelrun.config import compose_config
    from funnelrun.validation import validate_config

    cfg = compose_config(["eval.sample_quality=true"])
    assert (cfg.eval.quality_samples, cfg.eval.inception_weights, cfg.eval.quality_network.value) == (
        50_000, None, "inception")  # the paper's protocol by default
    with pytest.raises(FunnelrunError, match="eval.quality_samples=5 must be at least 10"):
        validate_config(compose_config(["eval.quality_samples=5"]))
    with pytest.raises(FunnelrunError, match="eval.quality_batch_size=0 must be at least 1"):
        validate_config(compose_config(["eval.quality_batch_size=0"]))
    with pytest.raises(FunnelrunError, match="quality_network"):
        compose_config(["eval.quality_network=inceptoin"])
