"""The ``--help`` text of every console entry point. Built from the config package and the schemas
without importing torch or Lightning, so ``funnelrun --help`` answers at once."""
from __future__ import annotations

import textwrap

from omegaconf import OmegaConf

from funnelrun.config import compose_config, group_options
from funnelrun.overrides import may_change_text

#: the config groups a user picks options from (``group=option``), in the order shown
GROUPS = ("data", "model", "trainer", "logger", "experiment", "debug", "hparams_search", "hydra/launcher")
#: groups whose default is not an option file of conf/
GROUP_DEFAULTS = {"hydra/launcher": "default: Hydra's basic launcher, one job after another"}
WIDTH = 100


def _wrapped(label: str, text: str, indent: int = 18) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=f"  {label:<{indent - 2}}", subsequent_indent=" " * indent)


def groups_text() -> str:
    lines = []
    for group in GROUPS:
        options = ", ".join(group_options(group))
        default = f" ({GROUP_DEFAULTS[group]})" if group in GROUP_DEFAULTS else ""
        lines.append(_wrapped(group, options + default))
    return "\n".join(lines)


def train_help(overrides: list[str]) -> str:
    """``funnelrun --help [overrides]``: usage, groups, keys, the other tools, and the composed config."""
    cfg = compose_config(overrides)
    config = OmegaConf.to_yaml(cfg)
    return f"""funnelrun: train and test a normalizing flow (funnels, NSF, VAEs, ...) configured by Hydra overrides.

usage: funnelrun [group=option ...] [key=value ...]    one run, in outputs/<date>/<time>/ (hydra.run.dir=...)
       funnelrun -m key=a,b [...]                      a sweep: one run per combination (Hydra multirun)
       funnelrun --cfg job [overrides]                 print the composed config and exit
example: funnelrun model=f_nsf data=cifar10_5bit data.data_dir=<dir with cifar-10-batches-py/>

config groups (group=option):
{groups_text()}

top-level keys: seed, ckpt_path (last: resume the run in hydra.run.dir; or a .ckpt file), auto_resume,
  compile, log_every_s (seconds between progress lines), name; sections data.*, model.*, trainer.*,
  optim.*, eval.*, sample.* (every key and its value below). A misspelt key or option, or a value of
  the wrong type, stops with the closest valid ones and exit status 2.
Ctrl-C, SIGTERM, SIGUSR1/2: save checkpoints/last.ckpt, print the command that resumes, exit 130
  (Ctrl-C) or 143.

the other tools (each has --help):
  funnelrun-sample ckpt_path=<run>    samples at temperatures, into <run>/samples/<date>_<time>/
  funnelrun-eval ckpt_path=<run> ood_data=<data option>   anomaly detection (BPD ratio, AUROC)
  funnelrun-check [ckpt_path=<run>]   exactness certificate (round trips, log-dets, density integral)
  funnelrun-report <run or sweep dir> ...   result table over seeds

Hydra flags: -m/--multirun, --cfg job|hydra|all, --resolve, --info, --hydra-help, -cd <config dir>.

== config (with the overrides given) ==
{config}"""


_RUN = """  ckpt_path=<run dir>        the trained run: its best-by-validation checkpoint (else last.ckpt);
  ckpt_path=<file.ckpt>      or one of its checkpoints; or hydra.run.dir=<run dir> ckpt_path=last|best
The model and data settings are read from <run>/config.yaml: nothing of the training command is
typed again. Model or data settings that are typed anyway must be the run's (only the differing
keys are named). These may change:
  {may_change}"""


def sample_help() -> str:
    return f"""funnelrun-sample: draw samples of a trained model at one or more temperatures.

usage: funnelrun-sample ckpt_path=<run> [key=value ...]
{_RUN.format(may_change=may_change_text())}

options (sample.*):
  sample.num_samples=1000            samples per temperature
  'sample.temperatures=[1.0]'        each scales the std of every Gaussian sampled (base, funnels' p(x_- | z))
  sample.interpolations=0            image flows and funnels: rows of latent interpolations between test images
  sample.out_dir=null                null: <run>/samples/<date>_<time>/
  seed=0                             the samples drawn

writes samples_T<T>.pt (and .png for 2-D and image data), interpolations.png/.pt"""


def eval_help() -> str:
    return f"""funnelrun-eval: likelihood-based anomaly detection (funnels paper Table 4) and the sample quality
(Inception score, FID: Table 3) of image models.

usage: funnelrun-eval ckpt_path=<run> ood_data=<data option> [ood.<key>=<value> ...] [key=value ...]
       funnelrun-eval ckpt_path=<run> eval.sample_quality=true eval.inception_weights=<file> [key=value ...]
{_RUN.format(may_change=may_change_text())}

options:
  ood_data=<data option>      the out-of-distribution set (e.g. fashion_mnist for an mnist run); it is
                              read with the run's data settings where both data configs have the key
  ood.<key>=<value>           data.<key> of the OOD set only (e.g. ood.data_dir=...)
  eval.is_samples=1000        bound models (VAE, VFlow): importance samples per example
  eval.is_chunk_size=16       importance samples per model call
  eval.sample_quality=false    true: Inception score and FID of eval.quality_samples samples at each
                              eval.temperatures, FID against the whole training split (ood_data optional)
  eval.quality_samples=50000  samples per temperature (the paper's protocol)
  eval.quality_batch_size=500 samples drawn and scored per call
  eval.inception_weights=null the FID Inception weights, a local file: torch-fidelity's
                              weights-inception-2015-12-05-6726825d.pth (needs pip install 'funnelrun[vision]')
  eval.quality_network=inception   standin: a fixed random network for tests/timing (sample/standin_*, no FID)
  log_every_s=30              seconds between progress lines where there is no terminal

writes <run>/eval/<date>_<time>/eval_metrics.json (test/ood BPD, ratio, AUROC; sample/fid,
sample/inception_score per temperature) and scores.pt (with ood_data)"""


def check_help() -> str:
    return f"""funnelrun-check: the exactness certificate of a model, as one JSON line.

usage: funnelrun-check ckpt_path=<run> [key=value ...]     a trained run
       funnelrun-check [group=option ...] [key=value ...]  an untrained model of these overrides
{_RUN.format(may_change=may_change_text())}

prints roundtrip_max_abs_err (every bijection's inverse(forward(x)) - x, and each funnel's right
inverse), logdet_max_abs_err (log-determinants against the autograd Jacobian), density_integral
(2-D exact models: the density integrated on a grid), exact; an error is null where no such part
was checked (e.g. a VAE has no bijective part)."""


def export_help() -> str:
    return """funnelrun-export: an exact model's log-density (TorchScript: and its sampler) as a file that loads
without funnelrun.

usage: funnelrun-export ckpt_path=<run dir or .ckpt> [export.format=torchscript|onnx] [export.out=<file>]
                        [data.data_dir=<dir>]

  ckpt_path      a run directory (its best checkpoint) or a checkpoint file of a finished run
  export.format  torchscript (default: log_prob and sample) or onnx (log_prob; needs funnelrun[export])
  export.out     the file to write (default: <run>/exports/<checkpoint>.pt|.onnx); never overwritten
  data.data_dir  where the run's data is, if it moved (the data shape is read from it)"""
