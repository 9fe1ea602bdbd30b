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
  ``test/examples``, ``ood/examples``; for bound models the one-sample ELBO's ``test/nll_elbo``,
  ``ood/nll_elbo``, ``test/bpd_elbo``, ``ood/bpd_elbo`` (else null);
- ``ood/ratio`` = OOD BPD / in-distribution BPD (Table 4's ratio, e.g. 23.42 / 1.21 = 19.36);
- ``ood/auroc``: the area under the ROC curve of the per-example NLL as an anomaly score (higher
  NLL = more anomalous, OOD the positive class), i.e. P(NLL_ood > NLL_test) with ties counted 1/2;
- for bound models ``ood/ratio`` and ``ood/auroc`` score by the ELBO, the paper's VAE score (Table 4:
  "we again use the ELBO"), and ``ood/ratio_is``, ``ood/auroc_is`` by the importance-weighted
  estimate (null for exact models);
- ``exact``, ``is_samples`` (null for exact models), ``ood_data``, ``ckpt_path``;

and ``scores.pt``: the per-example NLLs ``{"test": ..., "ood": ...}`` (float64 tensors; the IS
estimates for bound models, whose ELBO NLLs are ``test_elbo`` and ``ood_elbo``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from funnelrun.builder import build_data, load_model
from funnelrun.config import compose_config
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.anomaly import auroc, check_comparable, split_log_likelihoods
from funnelrun.evaluation.metrics import bits_per_dim
from funnelrun.pipelines.outputs import new_output_dir
from funnelrun.run_files import write_json_atomic
from funnelrun.validation import validate_config

EVAL_METRICS_FILE = "eval_metrics.json"


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


def _mean_nll(log_p: Optional[Tensor]) -> Optional[float]:
    return None if log_p is None else float(-log_p.mean())


def run_eval(argv: list[str]) -> Path:
    overrides, ood_name, ood_overrides = split_argv(argv)
    cfg, datamodule, model = load_model(overrides)
    if cfg.ckpt_path is None:
        raise FunnelrunError("funnelrun-eval needs ckpt_path=<run>/checkpoints/<file>.ckpt (a trained model)")
    ood_cfg = compose_config(ood_overrides)
    validate_config(ood_cfg)
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
        if bound is not None:
            scores[f"{split}_elbo"] = -bound
        metrics[f"{split}/nll"] = _mean_nll(log_p)
        # BPD = nll / (D ln 2): the model's log p already holds every preprocessing Jacobian and the
        # dequantization term (funnelrun.evaluation.metrics.bits_per_dim)
        metrics[f"{split}/bpd"] = bits_per_dim(metrics[f"{split}/nll"], model.data_dim, dm.bits)
        metrics[f"{split}/examples"] = len(log_p)
        metrics[f"{split}/nll_elbo"] = _mean_nll(bound)
        nll_elbo = metrics[f"{split}/nll_elbo"]
        metrics[f"{split}/bpd_elbo"] = None if nll_elbo is None else bits_per_dim(nll_elbo, model.data_dim, dm.bits)
    has_bpd = metrics["test/bpd"] is not None

    def ratio(suffix: str) -> Optional[float]:
        return metrics[f"ood/bpd{suffix}"] / metrics[f"test/bpd{suffix}"] if has_bpd else None

    def score(suffix: str) -> float:
        return auroc(scores["test" + suffix].numpy(), scores["ood" + suffix].numpy())

    if model.exact:
        metrics.update({"ood/ratio": ratio(""), "ood/auroc": score(""), "ood/ratio_is": None, "ood/auroc_is": None})
    else:  # the paper's VAE score is the ELBO; the importance-weighted estimate's beside it
        metrics.update({"ood/ratio": ratio("_elbo"), "ood/auroc": score("_elbo"),
                        "ood/ratio_is": ratio(""), "ood/auroc_is": score("")})
    metrics.update(
        exact=model.exact,
        is_samples=None if model.exact else cfg.eval.is_samples,
        ood_data=ood_name,
        ckpt_path=str(cfg.ckpt_path),
    )
    out = new_output_dir(cfg.ckpt_path, None, kind="eval")
    torch.save(scores, out / "scores.pt")
    write_json_atomic(out / EVAL_METRICS_FILE, metrics)
    kind = "exact" if model.exact else "ELBO, the paper's score; IS estimates: ood/*_is"
    unit = "BPD" if has_bpd else "NLL"
    suffix = "" if model.exact else "_elbo"
    test, ood = ((metrics[f"test/bpd{suffix}"], metrics[f"ood/bpd{suffix}"]) if has_bpd
                 else (metrics[f"test/nll{suffix}"], metrics[f"ood/nll{suffix}"]))
    ratio = f", ratio {metrics['ood/ratio']:.2f}" if has_bpd else ""
    print(f"test {unit} {test:.4f}, OOD ({ood_name}) {unit} {ood:.4f}{ratio}, AUROC {metrics['ood/auroc']:.4f} "
          f"({kind})", flush=True)
    print(f"outputs: {out} ({EVAL_METRICS_FILE}, scores.pt)", flush=True)
    return out
