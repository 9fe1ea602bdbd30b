"""``funnelrun-check``: print the exactness certificate
(:func:`funnelrun.evaluation.certificate.certify`) of a trained or a configured model as JSON.

    funnelrun-check ckpt_path=<run>           # the run's best-by-validation weights, its config.yaml
    funnelrun-check model=f_nsf data=digits   # an untrained model of these overrides

With ``ckpt_path`` the model and data come from the run (:mod:`funnelrun.pipelines.followup`);
without, from the overrides, as ``funnelrun`` composes them, with freshly initialised weights."""
from __future__ import annotations

import json
from typing import Optional

from omegaconf import OmegaConf

from funnelrun.builder import build
from funnelrun.config import compose_config
from funnelrun.evaluation.certificate import certify
from funnelrun.pipelines.followup import RUN_KEYS, key_of, read_run


def run_check(argv: list[str]) -> dict[str, Optional[float]]:
    trained = any(key_of(a) in RUN_KEYS for a in argv)
    if trained:
        run = read_run(argv, "funnelrun-check")
        cfg, datamodule, model = run.config, run.datamodule, run.model
    else:
        cfg = compose_config(argv)
        model, datamodule = build(cfg)
        print("note: no ckpt_path given: this certifies an untrained model (freshly initialised weights, seed "
              f"{cfg.seed}) of these overrides; pass ckpt_path=<run> to certify a trained one", flush=True)
    model.eval()
    if datamodule.test is None:
        datamodule.setup("test")
    x = next(iter(datamodule.test_dataloader()))
    x = (x[0] if isinstance(x, (list, tuple)) else x)[:256]
    result = certify(model, x, datamodule.bounds)
    weights = "trained" if trained else "untrained"
    print(f"model ({weights}): {OmegaConf.select(cfg, 'model._target_')} on {tuple(datamodule.data_shape)}, "
          f"exact={model.exact}")
    print(json.dumps(result), flush=True)
    return result
