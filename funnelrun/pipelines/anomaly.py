"""``funnelrun-eval``: likelihood-based anomaly detection (funnels paper §4, Table 4).

    funnelrun-eval ckpt_path=<run> ood_data=fashion_mnist

``ckpt_path`` is the run's directory (its best-by-validation checkpoint) or one of its checkpoint
files; the model and the in-distribution data come from the run's ``config.yaml``
(:mod:`funnelrun.pipelines.followup`). ``ood_data=<name>`` names the out-of-distribution (OOD) set, a
``data`` config option; it is read with the run's data settings where the two options share a key
(``data_dir``, ``bits``, batch sizes, ...), ``data.<key>=<value>`` overrides that may change apply to
both sets, and ``ood.<key>=<value>`` to the OOD set only (e.g. ``ood.data_dir=...``). Both sets must
have the model's data shape and the same bit depth.

Every example of both test splits is scored once, under ``torch.no_grad`` in batches of
``data.eval_batch_size``: log p(x) for exact models; for bound models (``exact: false``) the
importance-weighted estimate with ``eval.is_samples`` samples (``eval.is_chunk_size`` per call),
as the test of ``funnelrun`` does, with the one-sample ELBO (the paper's VAE score) beside it.
Progress is reported as in training (a bar on a terminal, else a line every ``log_every_s`` s).
Into a new directory ``<run>/eval/<date>_<time>/`` it writes ``eval_metrics.json``:

- ``test/nll``, ``ood/nll`` (nats per example), ``test/bpd``, ``ood/bpd`` (null for continuous data),
  ``test/examples``, ``ood/examples``; for bound models the one-sample ELBO's ``test/nll_elbo``,
  ``ood/nll_elbo``, ``test/bpd_elbo``, ``ood/bpd_elbo`` (else null);
- ``ood/ratio`` = OOD BPD / in-distribution BPD (Table 4's ratio, e.g. 23.42 / 1.21 = 19.36);
- ``ood/auroc``: the area under the ROC curve of the per-example NLL as an anomaly score (higher
  NLL = more anomalous, OOD the positive class), i.e. P(NLL_ood > NLL_test) with ties counted 1/2;
- for bound models ``ood/ratio`` and ``ood/auroc`` score by the ELBO, the paper's VAE score (Table 4:
  "we again use the ELBO"), and ``ood/ratio_is``, ``ood/auroc_is`` by the importance-weighted
  estimate (null for exact models);
- ``exact``, ``is_samples`` (null for exact models), ``ood_data``, ``ckpt_path`` (the checkpoint scored);

and ``scores.pt``: the per-example NLLs ``{"test": ..., "ood": ...}`` (float64 tensors; the IS
estimates for bound models, whose ELBO NLLs are ``test_elbo`` and ``ood_elbo``).

With ``eval.sample_quality=true`` (``ood_data`` then optional) the same file also holds the
Inception score and FID of the model's samples at every ``eval.temperatures``
(:mod:`funnelrun.pipelines.sample_quality`, funnels paper Table 3).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig
from torch import Tensor

from funnelrun.api import Run
from funnelrun.builder import build_data
from funnelrun.config import compose_config
from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.anomaly import auroc, check_comparable, split_log_likelihoods
from funnelrun.evaluation.metrics import bits_per_dim
from funnelrun.pipelines.followup import key_of, may_change, read_run
from funnelrun.pipelines.outputs import new_output_dir
from funnelrun.pipelines.sample_quality import prepare_network, score_samples
from funnelrun.run_files import write_json_atomic
from funnelrun.validation import validate_config

EVAL_METRICS_FILE = "eval_metrics.json"


#: data keys of the run that the OOD set does not take over (they name the set itself)
OWN_DATA_KEYS = ("_target_", "name", "table7")


def _asks_sample_quality(argv: list[str]) -> bool:
    return any(a.split("=", 1)[0].lstrip("+") == "eval.sample_quality" and a.split("=", 1)[-1].lower() == "true"
               for a in argv)


def split_argv(argv: list[str]) -> tuple[list[str], Optional[str], list[str]]:
    """(the run's overrides, the OOD data option or None, the OOD set's own overrides as ``data.<key>=...``);
    ``ood_data`` may be left out only with ``eval.sample_quality=true``."""
    names = [a.split("=", 1)[1] for a in argv if a.startswith("ood_data=")]
    if len(names) > 1 or (names and not names[0]) or (not names and not _asks_sample_quality(argv)):
        raise FunnelrunError(
            "funnelrun-eval needs exactly one ood_data=<data option> (e.g. ood_data=fashion_mnist for a model "
            "trained with data=mnist); it is scored with the model of the run given by ckpt_path. Or "
            "eval.sample_quality=true: the Inception score and FID of the model's samples"
        )
    overrides = [a for a in argv if not a.startswith(("ood_data=", "ood."))]
    extra = ["data." + a.removeprefix("ood.") for a in argv if a.startswith("ood.")]
    return overrides, (names[0] if names else None), extra


def ood_config(run_cfg: DictConfig, ood_name: str, overrides: list[str], extra: list[str]) -> DictConfig:
    """The OOD set's config: the ``data=<ood_name>`` option, with the run's values of the keys both
    data configs have, then the ``data.*`` overrides that may change and the ``ood.*`` ones."""
    shared = [o for o in overrides if key_of(o).startswith("data.") and may_change(key_of(o))]
    typed = {key_of(o) for o in shared + extra}
    ood_cfg = compose_config([f"data={ood_name}", *shared, *extra])
    for key, value in run_cfg.data.items():
        if key in ood_cfg.data and key not in OWN_DATA_KEYS and f"data.{key}" not in typed:
            ood_cfg.data[key] = value
    validate_config(ood_cfg)
    return ood_cfg


def _mean_nll(log_p: Optional[Tensor]) -> Optional[float]:
    return None if log_p is None else float(-log_p.mean())


def run_eval(argv: list[str]) -> Path:
    overrides, ood_name, extra = split_argv(argv)
    run = read_run(overrides, "funnelrun-eval")
    cfg = run.config
    # the sample-quality network first: a missing weights file stops here, before anything is scored
    network = prepare_network(cfg, run) if cfg.eval.sample_quality else None
    ood_datamodule = build_data(ood_config(cfg, ood_name, overrides, extra)) if ood_name is not None else None
    if ood_datamodule is not None:
        check_comparable(run.datamodule, ood_datamodule, str(ood_name))
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("gpu", "cuda", "auto")
    device = torch.device("cuda" if cuda else "cpu")
    run.model.to(device)

    metrics: dict[str, Any] = {}
    scores: dict[str, Tensor] = {}
    lines: list[str] = []
    if ood_datamodule is not None:
        scores, anomaly, line = _anomaly_scores(run, ood_datamodule, str(ood_name), device)
        metrics.update(anomaly)
        lines.append(line)
    if network is not None:
        quality, line = score_samples(cfg, run, network, device)
        metrics.update(quality)
        lines.append(line)
    metrics.update(exact=run.model.exact, ckpt_path=str(run.checkpoint))
    out = new_output_dir(run.path, None, kind="eval")
    if scores:
        torch.save(scores, out / "scores.pt")
    write_json_atomic(out / EVAL_METRICS_FILE, metrics)
    for line in lines:
        print(line, flush=True)
    written = EVAL_METRICS_FILE + (", scores.pt" if scores else "")
    print(f"outputs: {out} ({written})", flush=True)
    return out


def _anomaly_scores(run: Run, ood_datamodule: FunnelDataModule, ood_name: str,
                    device: torch.device) -> tuple[dict[str, Tensor], dict[str, Any], str]:
    """(per-example scores, the test/ood metrics, a summary line) of the run's model on both test splits."""
    cfg, datamodule, model = run.config, run.datamodule, run.model
    scores: dict[str, Tensor] = {}
    metrics: dict[str, Any] = {}
    for split, dm in (("test", datamodule), ("ood", ood_datamodule)):
        label = f"scoring the {'test split' if split == 'test' else f'OOD set ({ood_name})'}"
        log_p, bound = split_log_likelihoods(model, dm, cfg.eval.is_samples, cfg.eval.is_chunk_size, device,
                                             label=label, every_s=float(cfg.log_every_s))
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
    metrics.update(is_samples=None if model.exact else cfg.eval.is_samples, ood_data=ood_name)
    kind = "exact" if model.exact else "ELBO, the paper's score; IS estimates: ood/*_is"
    unit = "BPD" if has_bpd else "NLL"
    suffix = "" if model.exact else "_elbo"
    test, ood = ((metrics[f"test/bpd{suffix}"], metrics[f"ood/bpd{suffix}"]) if has_bpd
                 else (metrics[f"test/nll{suffix}"], metrics[f"ood/nll{suffix}"]))
    shown_ratio = f", ratio {metrics['ood/ratio']:.2f}" if has_bpd else ""
    line = (f"test {unit} {test:.4f}, OOD ({ood_name}) {unit} {ood:.4f}{shown_ratio}, AUROC {metrics['ood/auroc']:.4f} "
            f"({kind})")
    return scores, metrics, line
