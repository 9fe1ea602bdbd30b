"""One LightningModule for any funnelrun model: maximum likelihood, exact test NLL, resumable."""
from __future__ import annotations

import random
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from funnelrun.models.flow import Flow
from funnelrun.training.metrics import bits_per_dim


def _first(batch: Any) -> Tensor:
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _numpy_state_to_plain(state: tuple) -> tuple:
    """numpy's RNG state with its key array as a list: loadable by ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, cached = state
    return (name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached))


class DensityEstimator(pl.LightningModule):
    """Trains ``model`` on loss = -mean log p(x) with Adam and cosine annealing to 0 over
    ``trainer.max_steps``. Validation and test NLL are means over the *whole* split: sums in
    float64 and example counts, reduced across ranks (never a mean of batch means)."""

    def __init__(self, model: Flow, lr: float = 5e-4, weight_decay: float = 0.0, bits: Optional[int] = None):
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.bits = bits
        self._sum = torch.zeros((), dtype=torch.float64)
        self._count = torch.zeros((), dtype=torch.float64)
        self.results: dict[str, Optional[float]] = {}

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = -self.model.log_prob(_first(batch)).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = max(int(self.trainer.max_steps), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- evaluation: exact means over the whole split ---------------------------------------
    def _reset(self) -> None:
        self._sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._count = torch.zeros((), dtype=torch.float64, device=self.device)

    def _accumulate(self, batch: Any) -> None:
        nll = -self.model.log_prob(_first(batch))
        self._sum += nll.double().sum()
        self._count += nll.shape[0]

    def _reduced_nll(self) -> float:
        total = self.trainer.strategy.reduce(self._sum, reduce_op="sum")
        count = self.trainer.strategy.reduce(self._count, reduce_op="sum")
        return (total / count).item()

    def _log_split(self, split: str) -> None:
        nll = self._reduced_nll()
        self.results[f"{split}/nll"] = nll
        self.log(f"{split}/nll", nll, prog_bar=True, rank_zero_only=True)
        bpd = bits_per_dim(nll, self.model.data_dim, self.bits)
        self.results[f"{split}/bpd"] = bpd
        if bpd is not None:
            self.log(f"{split}/bpd", bpd, rank_zero_only=True)

    def on_validation_epoch_start(self) -> None:
        self._reset()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._accumulate(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")

    def on_test_epoch_start(self) -> None:
        self._reset()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._accumulate(batch)

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    # -- resume: RNG state travels with the checkpoint --------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_state"] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state_to_plain(np.random.get_state()),
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rng_state")
        if state is not None:
            torch.set_rng_state(state["torch"])
            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
            random.setstate(state["python"])
