"""Non-finite losses and gradients: skipped and counted; too many in a row stop the run clearly;
"best" never names a non-finite validation score."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from funnelrun.models.nsf import build_nsf
from funnelrun.training.callbacks import FiniteModelCheckpoint
from funnelrun.training.module import DensityEstimator, NonFiniteTrainingError


class PoisonedFlow(torch.nn.Module):
    """Wraps a flow; log_prob is NaN on the training steps listed in ``bad_calls``."""

    def __init__(self, flow, bad_calls):
        super().__init__()
        self.flow, self.bad_calls, self.calls = flow, set(bad_calls), 0
        self.data_dim, self.latent_dim, self.exact = flow.data_dim, flow.latent_dim, flow.exact

    def log_prob(self, x):
        out = self.flow.log_prob(x)
        if self.training:
            self.calls += 1
            if self.calls in self.bad_calls:
                return out * float("nan")
        return out


def _fit(module, steps, tmp_path, callbacks=()):
    data = DataLoader(TensorDataset(torch.randn(512, 2)), batch_size=64)
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=list(callbacks), default_root_dir=tmp_path, val_check_interval=2,
                         check_val_every_n_epoch=None, enable_checkpointing=bool(callbacks))
    trainer.fit(module, data, data)
    return trainer


def _small_nsf():
    torch.manual_seed(0)
    return build_nsf((2,), num_steps=1, hidden_features=8, num_blocks=1, num_bins=4)


def test_nonfinite_steps_are_skipped_and_counted(tmp_path):
    model = PoisonedFlow(_small_nsf(), bad_calls={3, 4})
    module = DensityEstimator(model, lr=1e-2)
    snapshots = []

    class Snap(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            snapshots.append([p.detach().clone() for p in pl_module.parameters()])

    _fit(module, 6, tmp_path, [Snap()])
    assert module.nonfinite_steps == 2 and module.consecutive_nonfinite == 0
    # steps 3 and 4 (1-based) changed nothing; the others did
    same = [all(torch.equal(a, b) for a, b in zip(snapshots[i - 1], snapshots[i])) for i in range(1, 6)]
    assert same == [False, True, True, False, False]
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_too_many_nonfinite_steps_in_a_row_stop_with_a_clear_message(tmp_path):
    model = PoisonedFlow(_small_nsf(), bad_calls=set(range(3, 100)))
    module = DensityEstimator(model, lr=1e-2, max_consecutive_nonfinite=4)
    with pytest.raises(NonFiniteTrainingError) as info:
        _fit(module, 50, tmp_path)
    message = str(info.value)
    # calls 3..6 are the 3rd..6th optimizer steps: global steps 2..5, the 4th in a row at global step 5
    assert "step 5" in message and "4 steps in a row" in message
    assert "optim.lr" in message and "model.tail_bound" in message and "Last good checkpoint" in message


def test_best_checkpoint_never_names_a_nonfinite_score(tmp_path):
    checkpoint = FiniteModelCheckpoint(dirpath=tmp_path / "ck", monitor="val/nll", mode="min", save_last=True)

    class NaNValidation(DensityEstimator):
        def validation_step(self, batch, batch_idx):
            self._sum += float("nan")

    _fit(NaNValidation(_small_nsf()), 4, tmp_path, [checkpoint])
    assert checkpoint.best_model_path == ""
    assert (tmp_path / "ck" / "last.ckpt").is_file()


def test_spline_flow_stays_finite_far_outside_the_tail_bound():
    model = _small_nsf()
    x = torch.tensor([[1e4, -1e4], [-3e3, 5e3]], requires_grad=True)
    log_p = model.log_prob(x)
    log_p.sum().backward()
    assert torch.isfinite(log_p).all() and torch.isfinite(x.grad).all()
