"""``funnelrun-check [overrides] [ckpt_path=...]``: print the exactness certificate
(:func:`funnelrun.evaluation.certificate.certify`) of a configured, optionally trained, model as JSON."""
from __future__ import annotations

import json
from typing import Optional

from omegaconf import OmegaConf

from funnelrun.builder import load_model
from funnelrun.evaluation.certificate import certify


def run_check(argv: list[str]) -> dict[str, Optional[float]]:
    cfg, datamodule, model = load_model(argv)
    x = next(iter(datamodule.test_dataloader()))
    x = (x[0] if isinstance(x, (list, tuple)) else x)[:256]
    result = certify(model, x, datamodule.bounds)
    print(f"model: {OmegaConf.select(cfg, 'model._target_')} on {tuple(datamodule.data_shape)}, exact={model.exact}")
    print(json.dumps(result), flush=True)
    return result
