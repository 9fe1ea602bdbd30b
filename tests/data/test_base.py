"""The shared DataModule machinery: batches of TensorRows are fetched whole, with the same rows."""
import torch

from funnelrun.data.base import TensorRows, collate_batches
from funnelrun.data.plane import PlaneDataModule


def test_training_batches_are_the_sampled_rows_fetched_whole():
    dm = PlaneDataModule("checkerboard", n_train=1000, n_val=10, n_test=10, batch_size=64)
    sampler_batches = iter(dm.train_dataloader().batch_sampler)
    for _, batch in zip(range(5), dm.train_dataloader()):
        indices = next(sampler_batches)
        assert torch.equal(batch, torch.stack([dm.train[i] for i in indices]))


def test_eval_batches_cover_the_split_in_order():
    dm = PlaneDataModule("checkerboard", n_train=10, n_val=10, n_test=1000, eval_batch_size=300)
    assert torch.equal(torch.cat(list(dm.test_dataloader())), dm.test_data)


def test_collate_stacks_lists_of_examples_and_passes_whole_batches():
    rows = TensorRows(torch.arange(12.0).reshape(6, 2))
    whole = rows.__getitems__([4, 1])
    assert torch.equal(collate_batches(whole), torch.tensor([[8.0, 9.0], [2.0, 3.0]]))
    assert torch.equal(collate_batches([rows[4], rows[1]]), whole)
