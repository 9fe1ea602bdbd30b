"""``funnelrun-eval``: likelihood-based anomaly detection (funnels paper §4, Table 4).

    funnelrun-eval model=f_nsf data=mnist ckpt_path=<run>/checkpoints/last.ckpt ood_data=fashion_mnist

Takes the same overrides as ``funnelrun`` (they must match the run that wrote the checkpoint) plus
``ood_data=<name>``: the out-of-distribution (OOD) set is the ``data`` config option ``<name>``
composed with every other override unchanged — so ``data.*`` overrides apply to both sets — and
with ``ood.<key>=<value>`` applied to the OOD set only, as ``data.<key>=<value>`` (e.g.
``ood.data_dir=...``). Both sets must have the model's data shape and the same bit depth.

Every example of both test splits is scored once, under ``torch.no_grad`` in batches of
``data.eval_batch_size``: log p(x) for exact models; for bound models (``exact: false``) the
importance-weighted estimate with ``eval.is_samples`` samples (``eval.is_chunk_size`` per call),
as the test of ``funnelrun`` does, with the one-sample ELBO (the paper's VAE score) beside it.
Into a new directory ``<checkpoint's run dir>/eval/<time>/`` it writes ``eval_metrics.json``:

- ``test/nll``, ``ood/nll`` (nats per example), ``test/bpd``, ``ood/bpd`` (null for continuous data),
  ``test/examples``, ``ood/examples``; ``test/nll_elbo``, ``ood/nll_elbo`` (bound models, else null);
- ``ood/ratio`` = OOD BPD / in-distribution BPD (Table 4's ratio, e.g. 23.42 / 1.21 = 19.36);
- ``ood/auroc``: the area under the ROC curve of the per-example NLL as an anomaly score (higher
  NLL = more anomalous, OOD the positive class), i.e. P(NLL_ood > NLL_test) with ties counted 1/2;
- ``exact``, ``is_samples`` (null for exact models), ``ood_data``, ``ckpt_path``;

and ``scores.pt``: the per-example NLLs ``{"test": ..., "ood": ...}`` (float64 tensors).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from hydra.errors import InstantiationException
from torch import Tensor

from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.evaluation.loading import compose_config, load_model
from funnelrun.evaluation.sample import new_output_dir
from funnelrun.models.flow import Flow
from funnelrun.training.metrics import bits_per_dim
from funnelrun.training.run_dir import write_json_atomic
from funnelrun.validation import validate_config

EVAL_METRICS_FILE = "eval_metrics.json"


def auroc(in_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Area under the ROC curve for ``ood_scores`` (positives) against ``in_scores`` (negatives):
    the Mann-Whitney U statistic over n_in * n_ood, from average ranks (ties count 1/2).

    Example:
        >>> auroc(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
        0.875
    """
    in_scores, ood_scores = np.asarray(in_scores, np.float64), np.asarray(ood_scores, np.float64)
    if len(in_scores) == 0 or len(ood_scores) == 0:
        raise FunnelrunError("AUROC needs at least one in-distribution and one OOD example")
    scores = np.concatenate([in_scores, ood_scores])
    if np.isnan(scores).any():
        raise FunnelrunError("the model gave NaN log-likelihoods, so no AUROC; check the checkpoint and the data")
    _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2)[group]  # 1-based ranks, ties get their group's average
    n_in, n_ood = len(in_scores), len(ood_scores)
    u = ranks[n_in:].sum() - n_ood * (n_ood + 1) / 2
    return float(u / (n_in * n_ood))


@torch.no_grad()
def split_log_likelihoods(
    model: Flow, datamodule: FunnelDataModule, is_samples: int, is_chunk_size: int, device: torch.device
) -> tuple[Tensor, Optional[Tensor]]:
    """Per-example log p(x) (float64, CPU) over the whole test split: exact, or for a bound model
    the importance-weighted estimate, returned with the one-sample bound (else None)."""
    if datamodule.test is None:
        datamodule.setup("test")
    estimates, bounds = [], []
    for batch in datamodule.test_dataloader():
        x = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
        bound = model.log_prob(x).double().cpu()
        if model.exact:
            estimates.append(bound)
        else:
            bounds.append(bound)
            estimates.append(importance_weighted_log_prob(model, x, is_samples, is_chunk_size).cpu())
    return torch.cat(estimates), (torch.cat(bounds) if bounds else None)


def split_argv(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(the model's overrides, the OOD data option, the OOD set's overrides)."""
    names = [a.split("=", 1)[1] for a in argv if a.startswith("ood_data=")]
    if len(names) != 1 or not names[0]:
        raise FunnelrunError(
            "funnelrun-eval needs exactly one ood_data=<data option> (e.g. ood_data=fashion_mnist for a model "
            "trained with data=mnist); it is scored with the model given by ckpt_path and the other overrides"
        )
    overrides = [a for a in argv if not a.startswith(("ood_data=", "ood."))]
    extra = ["data." + a.removeprefix("ood.") for a in argv if a.startswith("ood.")]
    ood = [a for a in overrides if not a.startswith("data=")] + [f"data={names[0]}", *extra]
    return overrides, names[0], ood


def check_comparable(data: FunnelDataModule, ood: FunnelDataModule, ood_name: str) -> None:
    """The OOD set must be data the model can score: same shape, same bit depth."""
    if tuple(ood.data_shape) != tuple(data.data_shape):
        raise FunnelrunError(
            f"ood_data={ood_name} has data shape {tuple(ood.data_shape)} but the model was trained on data of "
            f"shape {tuple(data.data_shape)}; choose an OOD set of the same shape (e.g. fashion_mnist for an "
            f"mnist model)"
        )
    if ood.bits != data.bits:
        raise FunnelrunError(
            f"ood_data={ood_name} has {ood.bits} bits but the model's data has {data.bits}; set the same bit "
            f"depth for both (e.g. ood.bits={data.bits})"
        )


def _mean_nll(log_p: Optional[Tensor]) -> Optional[float]:
    return None if log_p is None else float(-log_p.mean())


def run_eval(argv: list[str]) -> Path:
    overrides, ood_name, ood_overrides = split_argv(argv)
    cfg, datamodule, model = load_model(overrides)
    if cfg.ckpt_path is None:
        raise FunnelrunError("funnelrun-eval needs ckpt_path=<run>/checkpoints/<file>.ckpt (a trained model)")
    ood_cfg = compose_config(ood_overrides)
    validate_config(ood_cfg)
    from funnelrun.training.run import build_data

    ood_datamodule = build_data(ood_cfg)
    check_comparable(datamodule, ood_datamodule, ood_name)
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("gpu", "cuda", "auto")
    device = torch.device("cuda" if cuda else "cpu")
    model.to(device)

    scores: dict[str, Tensor] = {}
    metrics: dict[str, Any] = {}
    for split, dm in (("test", datamodule), ("ood", ood_datamodule)):
        log_p, bound = split_log_likelihoods(model, dm, cfg.eval.is_samples, cfg.eval.is_chunk_size, device)
        scores[split] = -log_p
        metrics[f"{split}/nll"] = _mean_nll(log_p)
        # BPD = nll / (D ln 2): the model's log p already holds every preprocessing Jacobian and the
        # dequantization term (funnelrun.training.metrics.bits_per_dim)
        metrics[f"{split}/bpd"] = bits_per_dim(metrics[f"{split}/nll"], model.data_dim, dm.bits)
        metrics[f"{split}/examples"] = len(log_p)
        metrics[f"{split}/nll_elbo"] = _mean_nll(bound)
    has_bpd = metrics["test/bpd"] is not None
    metrics["ood/ratio"] = metrics["ood/bpd"] / metrics["test/bpd"] if has_bpd else None
    metrics["ood/auroc"] = auroc(scores["test"].numpy(), scores["ood"].numpy())
    metrics.update(
        exact=model.exact,
        is_samples=None if model.exact else cfg.eval.is_samples,
        ood_data=ood_name,
        ckpt_path=str(cfg.ckpt_path),
    )
    out = new_output_dir(cfg.ckpt_path, None, kind="eval")
    torch.save(scores, out / "scores.pt")
    write_json_atomic(out / EVAL_METRICS_FILE, metrics)
    kind = "exact" if model.exact else f"importance-weighted estimate, {cfg.eval.is_samples} samples"
    unit = "BPD" if has_bpd else "NLL"
    test, ood = (metrics["test/bpd"], metrics["ood/bpd"]) if has_bpd else (metrics["test/nll"], metrics["ood/nll"])
    ratio = f", ratio {metrics['ood/ratio']:.2f}" if has_bpd else ""
    print(f"test {unit} {test:.4f}, OOD ({ood_name}) {unit} {ood:.4f}{ratio}, AUROC {metrics['ood/auroc']:.4f} "
          f"({kind})", flush=True)
    print(f"outputs: {out} ({EVAL_METRICS_FILE}, scores.pt)", flush=True)
    return out


def main(argv: Optional[list[str]] = None) -> None:
    try:
        run_eval(sys.argv[1:] if argv is None else argv)
    except (FunnelrunError, InstantiationException) as exc:
        message = str(exc.__cause__) if isinstance(exc, InstantiationException) and exc.__cause__ else str(exc)
        print(f"funnelrun-eval: error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
