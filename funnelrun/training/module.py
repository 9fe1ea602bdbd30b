"""One LightningModule for any funnelrun model: maximum likelihood, test NLL (exact, or an
importance-weighted estimate beside the bound), resumable."""
from __future__ import annotations

import random
from typing import Any, Optional, cast

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor

from funnelrun import __version__
from funnelrun.checkpoint import FINGERPRINT_KEY, VERSION_KEY
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.evaluation.metrics import bits_per_dim
from funnelrun.models.flow import Flow
from funnelrun.surjections.augment import Augment
from funnelrun.training.compile import maybe_compile
from funnelrun.training.nonfinite import NonFiniteFlags


class NonFiniteTrainingError(FunnelrunError):
    """Too many consecutive optimizer steps had a non-finite loss or gradient."""


def _first(batch: Any) -> Tensor:
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _numpy_state_to_plain(state: tuple) -> tuple:
    """numpy's RNG state with its key array as a list: loadable by ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, cached = state
    return (name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached))


class DensityEstimator(pl.LightningModule):
    """Trains ``model`` on loss = -mean log p(x) with Adam and cosine annealing to 0 over
    ``trainer.max_steps`` (a VFlow's -log q term weighted during its entropy warm-up,
    :class:`~funnelrun.surjections.augment.Augment`). Validation and test NLL are means over the
    *whole* split: sums in float64 and example counts, reduced across ranks (never a mean of batch
    means). For a model that gives a bound (``model.exact`` False), validation uses the one-sample
    bound and the test reports ``test/nll`` as the importance-weighted estimate with ``is_samples``
    samples (drawn ``is_chunk_size`` per call) and the one-sample bound as ``test/nll_elbo``."""

    def __init__(
        self,
        model: Flow,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        bits: Optional[int] = None,
        max_consecutive_nonfinite: int = 10,
        compile: bool = False,
        is_samples: int = 1000,
        is_chunk_size: int = 16,
        stamp: Optional[dict[str, Any]] = None,
    ):
        super().__init__()
        #: the build fingerprint (:func:`funnelrun.builder.fingerprint`) saved in every checkpoint, so
        #: that a checkpoint of another model or data shape is refused on loading
        self.stamp = stamp
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.bits = bits
        self.max_consecutive_nonfinite = max_consecutive_nonfinite
        #: the training log-density, through torch.compile when asked (falls back to eager)
        self.train_log_prob = maybe_compile(model.log_prob, enabled=compile)
        self.is_samples = is_samples
        self.is_chunk_size = is_chunk_size
        #: optimizer steps skipped for a non-finite loss or gradient: in total, and in a row now
        self.nonfinite_steps = 0
        self.consecutive_nonfinite = 0
        self._nonfinite_flags = NonFiniteFlags()
        self._sum = torch.zeros((), dtype=torch.float64)
        self._count = torch.zeros((), dtype=torch.float64)
        self._is_sum = torch.zeros((), dtype=torch.float64)
        self.results: dict[str, Optional[float]] = {}
        #: VFlow augmentations with an entropy warm-up: told the step before each training step
        self._warmups = [m for m in model.modules() if isinstance(m, Augment) and m.entropy_warmup_steps]

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        for layer in self._warmups:
            layer.set_step(self.global_step)
        loss = -self.train_log_prob(_first(batch)).mean()
        # only on the steps the logger writes (``trainer.log_every_n_steps``): ``self.log`` costs
        # about a millisecond, more than a whole step of a small flow on a CPU
        every = self.trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning's logger connector
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the update when any gradient is non-finite (a non-finite loss gives such gradients):
        Adam leaves every parameter, its moments and its step count untouched, while the step
        counter, schedule and data order advance as usual (resume stays exact). The check raises no
        host-device sync (:mod:`funnelrun.training.nonfinite`): a skipped step is counted, and too
        many in a row stop the run, when its flag reaches the host (at once on CPU, about a step
        later on a GPU)."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            self._nonfinite_flags.flag(optimizer, grads, self.global_step)
        self._count_nonfinite()

    def _count_nonfinite(self, wait: bool = False) -> None:
        """Count the flags that have arrived (``wait``: all, outside the training step, where
        Lightning allows no ``self.log``)."""
        for step, finite in self._nonfinite_flags.arrived(wait):
            if finite:
                self.consecutive_nonfinite = 0
                continue
            self.nonfinite_steps += 1
            self.consecutive_nonfinite += 1
            if not wait:
                self.log("train/nonfinite_steps", float(self.nonfinite_steps))
            if self.consecutive_nonfinite >= self.max_consecutive_nonfinite:
                raise NonFiniteTrainingError(self._nonfinite_message(step))

    def on_train_end(self) -> None:
        self._count_nonfinite(wait=True)

    def _nonfinite_message(self, step: int) -> str:
        callback = cast(Optional[ModelCheckpoint], self.trainer.checkpoint_callback)  # funnelrun's: a ModelCheckpoint
        last_good = (callback.last_model_path or callback.best_model_path) if callback else ""
        return (
            f"training stopped at step {step}: {self.consecutive_nonfinite} steps in a row had a "
            f"non-finite loss or gradient ({self.nonfinite_steps} skipped in total). Last good checkpoint: "
            f"{last_good or 'none yet'}. Likely causes: a learning rate too high (optim.lr), a spline tail bound "
            "too small for the data's scale (model.tail_bound), unnormalised data or NaN/inf in the data. "
            "Allow more with optim.max_consecutive_nonfinite=<n>"
        )

    def configure_optimizers(self) -> OptimizerLRScheduler:
        # fused: one kernel over all parameters instead of ~10 small ops per tensor (CPU and CUDA).
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)
        total = max(int(self.trainer.max_steps), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- evaluation: exact means over the whole split ---------------------------------------
    def _reset(self) -> None:
        self._sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._count = torch.zeros((), dtype=torch.float64, device=self.device)
        self._is_sum = torch.zeros((), dtype=torch.float64, device=self.device)

    def _accumulate(self, batch: Any) -> None:
        nll = -self.model.log_prob(_first(batch))
        self._sum += nll.double().sum()
        self._count += nll.shape[0]

    def _reduced_sum(self, value: Tensor) -> Tensor:
        """Sum over ranks (on a copy: DDP's all-reduce works in place)."""
        return self.trainer.strategy.reduce(value.clone(), reduce_op="sum")

    def _reduced_nll(self, total: Tensor) -> float:
        return (self._reduced_sum(total) / self._reduced_sum(self._count)).item()

    def _log_reduced(self, name: str, value: float, prog_bar: bool = False) -> None:
        """Log a value that is already reduced over ranks (the same on every rank). ``sync_dist`` with
        ``max`` tells Lightning so without changing it (the max of equal values is that value, exactly;
        a mean over ranks could round), and Lightning then does not warn that it is unsynchronised."""
        self.log(name, value, prog_bar=prog_bar, sync_dist=True, reduce_fx="max")

    def _log_split(self, split: str, total: Optional[Tensor] = None) -> None:
        """Log the split's mean NLL from ``total`` (default: the one-sample sum) and its BPD."""
        # values are already reduced over ranks, so every rank logs the same number (and every
        # rank's ModelCheckpoint finds its monitor)
        nll = self._reduced_nll(self._sum if total is None else total)
        self.results[f"{split}/nll"] = nll
        self.results[f"{split}/examples"] = int(self._reduced_sum(self._count).item())
        self._log_reduced(f"{split}/nll", nll, prog_bar=True)
        bpd = bits_per_dim(nll, self.model.data_dim, self.bits)
        self.results[f"{split}/bpd"] = bpd
        if bpd is not None:
            self._log_reduced(f"{split}/bpd", bpd)

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
        if not self.model.exact:
            log_p = importance_weighted_log_prob(self.model, _first(batch), self.is_samples, self.is_chunk_size)
            self._is_sum -= log_p.sum()

    def on_test_epoch_end(self) -> None:
        if self.model.exact:
            self._log_split("test")
            return
        elbo_nll = self._reduced_nll(self._sum)
        self.results["test/nll_elbo"] = elbo_nll
        self._log_reduced("test/nll_elbo", elbo_nll)
        self._log_split("test", self._is_sum)

    # -- resume: RNG state travels with the checkpoint --------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._count_nonfinite(wait=True)
        if self.stamp is not None:
            checkpoint[FINGERPRINT_KEY] = self.stamp
        checkpoint[VERSION_KEY] = __version__
        checkpoint["nonfinite_steps"] = (self.nonfinite_steps, self.consecutive_nonfinite)
        checkpoint["rng_state"] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state_to_plain(cast(tuple, np.random.get_state())),  # the legacy MT19937 tuple
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite_steps, self.consecutive_nonfinite = checkpoint.get("nonfinite_steps", (0, 0))
        state = checkpoint.get("rng_state")
        if state is not None:
            torch.set_rng_state(state["torch"])
            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
            random.setstate(state["python"])
