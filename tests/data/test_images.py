"""Image sets on small files written in the real formats (IDX, CIFAR pickles, ImageNet npz, CelebA JPEGs),
the real MNIST when present: splits, n bits, dequantization, errors, and one training run end to end."""
from __future__ import annotations

import gzip
import math
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Subset

from funnelrun.data.celeba import load_celeba
from funnelrun.data.cifar import load_cifar10
from funnelrun.data.digits import load_digits
from funnelrun.data.idx import load_idx, read_idx_images
from funnelrun.data.imagenet import load_imagenet
from funnelrun.data.images import EvalImages, ImageDataModule, NBitImages, QuantizedBatch, validation_rows
from funnelrun.data.synthetic import write_cifar10, write_imagenet
from funnelrun.errors import FunnelrunError
from funnelrun.transforms.preprocess import Centre, Logit, Rescale

pytestmark = pytest.mark.usefixtures("one_thread")

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _file(root: Path, rel: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _numbered(n: int, shape: tuple[int, ...], start: int = 0) -> np.ndarray:
    """uint8 images whose first two pixels spell their number (start + i): every image is identifiable."""
    rng = np.random.default_rng(start)
    x = rng.integers(0, 256, (n, *shape), dtype=np.uint8).reshape(n, -1)
    ids = np.arange(start, start + n)
    x[:, 0], x[:, 1] = ids // 256, ids % 256
    return x.reshape(n, *shape)


def _ids(images: np.ndarray | torch.Tensor | NBitImages) -> set[int]:
    flat = (images.numpy() if isinstance(images, NBitImages) else np.asarray(images)).reshape(len(images), -1).astype(int)
    return set((flat[:, 0] * 256 + flat[:, 1]).tolist())


def _idx_bytes(images: np.ndarray, magic: int = 2051) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">iiii", magic, n, rows, cols) + images.tobytes()


def _write_idx(root: Path, folder: str, train: np.ndarray, test: np.ndarray, gz: bool) -> None:
    for name, images in (("train", train), ("t10k", test)):
        data = _idx_bytes(images)
        rel = f"{folder}/raw/{name}-images-idx3-ubyte"
        if gz:
            _file(root, rel + ".gz").write_bytes(gzip.compress(data))
        else:
            _file(root, rel).write_bytes(data)


# -- readers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_reads_gzip_and_raw(tmp_path: Path, gz: bool) -> None:
    train, test = _numbered(7, (6, 5)), _numbered(3, (6, 5), start=100)
    _write_idx(tmp_path, "FashionMNIST", train, test, gz)
    splits = load_idx("fashion_mnist", tmp_path)
    assert splits.train.shape == (7, 1, 6, 5) and splits.val is None
    assert np.array_equal(splits.train[:, 0], train) and np.array_equal(splits.test[:, 0], test)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda b: _idx_bytes(np.zeros((2, 3, 3), np.uint8), magic=2049), "magic number 2049 (2049 is a label file)"),
        (lambda b: b[:-5], "bytes, expected 34 for the 2 images of 3x3"),
        (lambda b: b[:10], "shorter than the 16-byte IDX header"),
        (lambda b: gzip.compress(b)[:-8], "not a complete gzip file"),
    ],
    ids=["labels file", "truncated", "no header", "truncated gzip"],
)
def test_idx_corrupt_files_are_named(tmp_path: Path, damage, message: str) -> None:
    data = damage(_idx_bytes(np.zeros((2, 3, 3), np.uint8)))
    path = _file(tmp_path, "MNIST/raw/train-images-idx3-ubyte" + (".gz" if "gzip" in message else ""))
    path.write_bytes(data)
    with pytest.raises(FunnelrunError, match="cannot read") as err:
        read_idx_images(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_cifar_batches_in_chw_order(tmp_path: Path) -> None:
    train, test = _numbered(20, (3, 32, 32)), _numbered(6, (3, 32, 32), start=500)
    write_cifar10(tmp_path, train, test)
    splits = load_cifar10(tmp_path)
    assert np.array_equal(splits.train, train) and np.array_equal(splits.test, test)
    # CHW: the row's first 1024 values are the red plane
    row = pickle.loads((tmp_path / "cifar-10-batches-py/test_batch").read_bytes())[b"data"][0]
    assert np.array_equal(splits.test[0, 0].reshape(-1), row[:1024])


def test_cifar_corrupt_and_misshapen_batches(tmp_path: Path) -> None:
    write_cifar10(tmp_path, _numbered(20, (3, 32, 32)), _numbered(6, (3, 32, 32)))
    path = tmp_path / "cifar-10-batches-py/data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(FunnelrunError, match=r"cannot read .*data_batch_3: not a CIFAR-10 pickle batch"):
        load_cifar10(tmp_path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((4, 3000), np.uint8)}))
    with pytest.raises(FunnelrunError, match=r"data_batch_3.*shape \(N, 3072\), got uint8 array of shape \(4, 3000\)"):
        load_cifar10(tmp_path)


def test_imagenet_npz(tmp_path: Path) -> None:
    train, test = _numbered(30, (3, 32, 32)), _numbered(5, (3, 32, 32), start=300)
    write_imagenet(tmp_path, 32, train, test)
    splits = load_imagenet(32, tmp_path)
    assert np.array_equal(splits.train, train) and np.array_equal(splits.test, test)


def test_imagenet_corrupt_and_wrong_size(tmp_path: Path) -> None:
    write_imagenet(tmp_path, 32, _numbered(30, (3, 32, 32)), _numbered(5, (3, 32, 32)))
    path = tmp_path / "imagenet32/train_data_batch_7.npz"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(FunnelrunError, match=r"cannot read .*train_data_batch_7.npz: not a readable npz"):
        load_imagenet(32, tmp_path)
    write_imagenet(tmp_path, 64, _numbered(30, (3, 32, 32)), _numbered(5, (3, 32, 32)))  # 32x32 rows
    wrong_size = r"train_data_batch_1.npz: 'data': expected .*\(N, 12288\), got uint8 .*\(3, 3072\)"
    with pytest.raises(FunnelrunError, match=wrong_size):
        load_imagenet(64, tmp_path)


def _write_celeba(root: Path, partition: list[int]) -> list[tuple[int, int, int]]:
    """178x218 JPEGs: black outside the 148x148 centre crop, a solid colour per image inside it."""
    colours = []
    lines = []
    for i, label in enumerate(partition, start=1):
        colour = (10 + 40 * (i % 6), 250 - 30 * (i % 7), 20 * (i % 11))
        image = Image.new("RGB", (178, 218))
        image.paste(colour, (15, 35, 163, 183))
        image.save(_file(root, f"celeba/img_align_celeba/{i:06d}.jpg"), quality=100, subsampling=0)
        colours.append(colour)
        lines.append(f"{i:06d}.jpg {label}")
    _file(root, "celeba/list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return colours


def test_celeba_official_splits_centre_crop_and_resize(tmp_path: Path) -> None:
    partition = [0, 0, 1, 2, 0, 2, 1]
    colours = np.array(_write_celeba(tmp_path, partition))
    splits = load_celeba(tmp_path)
    assert [len(x) for x in (splits.train, splits.val, splits.test)] == [3, 2, 2]
    assert splits.train.shape[1:] == splits.val.shape[1:] == splits.test.shape[1:] == (3, 64, 64)
    for images, label in ((splits.train, 0), (splits.val, 1), (splits.test, 2)):
        expected = colours[[i for i, p in enumerate(partition) if p == label]]
        # the crop holds only the solid colour: a crop off by a pixel would blend black into the edges
        error = np.abs(images.astype(int) - expected[:, :, None, None]).max()
        assert error <= 6, error  # JPEG


def test_celeba_bad_partition_and_missing_image(tmp_path: Path) -> None:
    _write_celeba(tmp_path, [0, 1, 2])
    (tmp_path / "celeba/img_align_celeba/000002.jpg").unlink()
    with pytest.raises(FunnelrunError, match=r"000002.jpg is listed in list_eval_partition.txt but not found"):
        load_celeba(tmp_path)
    (tmp_path / "celeba/list_eval_partition.txt").write_text("000001.jpg 0\n000003.jpg 7\n")
    with pytest.raises(FunnelrunError, match=r"list_eval_partition.txt: line 2 is '000003.jpg 7'"):
        load_celeba(tmp_path)


def test_digits_split_and_levels() -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    splits = load_digits()
    assert splits.train.shape == (1437, 1, 8, 8) and splits.test.shape == (360, 1, 8, 8)
    values = sklearn_digits().images
    assert np.array_equal(np.sort(np.concatenate([splits.train, splits.test]).sum(axis=(1, 2, 3))),
                          np.sort(np.minimum(16 * values, 255).sum(axis=(1, 2))))
    assert np.array_equal(load_digits().test, splits.test)  # fixed, whatever the seed
    four_bits = ImageDataModule("digits", bits=4, val_size=200)
    assert set(np.unique(four_bits.train_data.numpy())) <= set(range(16))
    assert np.array_equal(np.sort(np.unique(four_bits.test_data.numpy())), np.arange(16))  # v = 15 and v = 16 share 15


# -- the DataModule -------------------------------------------------------------------------------
@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    write_cifar10(tmp_path, _numbered(60, (3, 32, 32)), _numbered(12, (3, 32, 32), start=1000))
    return tmp_path


def _module(data_dir: Path, **kwargs) -> ImageDataModule:
    options = dict(name="cifar10", data_dir=str(data_dir), bits=8, batch_size=8, eval_batch_size=5, val_size=10, seed=3)
    return ImageDataModule(**{**options, **kwargs})


def test_splits_disjoint_validation_carved_from_train(cifar_dir: Path) -> None:
    dm = _module(cifar_dir)
    train, val, test = map(_ids, (dm.train_data, dm.val_data, dm.test_data))
    assert (len(train), len(val), len(test)) == (50, 10, 12) and dm.data_shape == (3, 32, 32) and dm.data_dim == 3072
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val == set(range(60)) and test == set(range(1000, 1012))
    other = _module(cifar_dir, seed=99)
    assert np.array_equal(other.val_data.numpy(), dm.val_data.numpy())  # the split never depends on data.seed
    with pytest.raises(FunnelrunError, match="data.val_size=60: cifar10 has 60 training images"):
        _module(cifar_dir, val_size=60)
    with pytest.raises(FunnelrunError, match="no official validation split"):
        _module(cifar_dir, val_size=None)


def test_validation_rows_keep_file_order() -> None:
    train, val = validation_rows(100, 30, "x")
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0) and len(train) == 70
    assert sorted({*train, *val}) == list(range(100))


@pytest.mark.parametrize("bits", [5, 8])
def test_n_bit_reduction_and_dequantization_range(cifar_dir: Path, bits: int) -> None:
    dm = _module(cifar_dir, bits=bits)
    assert dm.bits == bits
    test = load_cifar10(cifar_dir).test
    assert np.array_equal(dm.test_data.numpy(), test // 2 ** (8 - bits))
    batch = next(iter(dm.test_dataloader()))
    assert batch.dtype == torch.float32 and batch.shape == (5, 3, 32, 32)
    assert torch.equal(batch.floor(), dm.test_data[:5].float())  # x_n + u with u in [0, 1)
    assert 0 <= batch.min() and batch.max() < 2**bits
    quantized = next(iter(dm.train_dataloader()))
    assert isinstance(quantized, QuantizedBatch) and quantized.images.dtype == torch.uint8
    train_batch = dm.dequantize_training_batch(quantized)
    assert train_batch.dtype == torch.float32 and train_batch.shape == (8, 3, 32, 32)
    assert torch.equal(train_batch.floor(), quantized.images.float()) and train_batch.max() < 2**bits


def test_top_level_stays_below_the_next_integer() -> None:
    from funnelrun.data.images import dequantize

    images = EvalImages(NBitImages(np.full((200, 1, 64, 64), 255, dtype=np.uint8), bits=8))
    values = torch.stack([images[i] for i in range(200)])
    assert values.max() < 256 and values.min() >= 255
    just_below_one = torch.full((4,), 1 - 2**-24)  # float32 255 + u rounds to 256 here
    assert float(255 + just_below_one[0]) == 256 and dequantize(torch.full((4,), 255), just_below_one).max() < 256


def test_eval_noise_fixed_by_index_over_runs_seeds_and_ranks(cifar_dir: Path) -> None:
    dm = _module(cifar_dir)
    first = torch.cat(list(dm.test_dataloader()))
    assert torch.equal(first, torch.cat(list(_module(cifar_dir, seed=7).test_dataloader())))
    # rank r of 2 takes examples r, r + 2, ...: each example gets the noise it gets on one rank
    for rank in range(2):
        shard = Subset(dm.test, range(rank, len(dm.test), 2))
        assert torch.equal(torch.stack([shard[i] for i in range(len(shard))]), first[rank::2])


def _training_batches(dm: ImageDataModule, n: int) -> list[torch.Tensor]:
    loader = dm.train_dataloader()
    batches = (b for _ in range(n) for b in loader)  # several epochs
    return [dm.dequantize_training_batch(b) for _, b in zip(range(n), batches)]


def test_training_noise_fresh_per_step_and_reproduced_on_resume(cifar_dir: Path) -> None:
    dm = _module(cifar_dir, batch_size=25)  # 50 training images: 2 steps per epoch
    batches = _training_batches(dm, 4)
    # epochs 0 (steps 0, 1) and 1 (steps 2, 3) each hold every training image once, with other noise
    assert _ids(torch.cat(batches[:2]).floor()) == _ids(torch.cat(batches[2:]).floor()) == _ids(dm.train_data)
    assert not torch.equal(batches[0], batches[2])
    assert all(torch.equal(a, b) for a, b in zip(_training_batches(_module(cifar_dir, batch_size=25), 4), batches))
    assert not torch.equal(_training_batches(_module(cifar_dir, batch_size=25, seed=4), 1)[0], batches[0])
    resumed = _module(cifar_dir, batch_size=25)
    resumed.load_state_dict({"global_step": 3})
    assert torch.equal(resumed.dequantize_training_batch(next(iter(resumed.train_dataloader()))), batches[3])


def test_training_noise_is_the_same_on_any_number_of_ranks(cifar_dir: Path, monkeypatch) -> None:
    """Each of 2 ranks takes its half of the global batch, images and noise: the two halves are the
    single process's batch."""
    whole = _training_batches(_module(cifar_dir, batch_size=24), 3)
    halves = []
    for rank in range(2):
        dm = _module(cifar_dir, batch_size=24)
        monkeypatch.setattr(dm, "_rank_and_world", lambda rank=rank: (rank, 2))
        halves.append(_training_batches(dm, 3))
    for step in range(3):
        assert torch.equal(torch.cat([halves[0][step], halves[1][step]]), whole[step])


def test_batches_do_not_depend_on_the_number_of_workers(cifar_dir: Path) -> None:
    reference = _training_batches(_module(cifar_dir, batch_size=10), 7)
    with_workers = _training_batches(_module(cifar_dir, batch_size=10, num_workers=2), 7)
    assert all(torch.equal(a, b) for a, b in zip(with_workers, reference))
    evals = [torch.cat(list(_module(cifar_dir, num_workers=k).test_dataloader())) for k in (0, 2)]
    assert torch.equal(*evals)


def test_a_quantized_batch_is_no_tensor_a_model_could_train_on(cifar_dir: Path) -> None:
    """Handed to a model without the data module's hook, a training batch fails loudly."""
    from funnelrun.models.flow import Flow

    dm = _module(cifar_dir)
    model = Flow(dm.preprocessing(), dm.data_shape)
    batch = next(iter(dm.train_dataloader()))
    with pytest.raises((TypeError, AttributeError)):
        model.log_prob(batch)
    moved = batch.to("cpu")
    assert isinstance(moved, QuantizedBatch) and moved.step == batch.step and torch.equal(moved.images, batch.images)


def test_mapped_images_pickle_as_their_file_not_a_copy(tmp_path: Path) -> None:
    import pickle

    array = _numbered(400, (3, 4, 4))
    np.save(tmp_path / "x.npy", array)
    images = NBitImages(np.load(tmp_path / "x.npy", mmap_mode="r"), bits=5, rows=np.arange(3, 40, 2))
    data = pickle.dumps(images)
    assert len(data) < 2000  # the 19,200 bytes of images are not in it
    again = pickle.loads(data)
    assert isinstance(again.array, np.memmap) and np.array_equal(again.numpy(), images.numpy())
    assert np.array_equal(images.numpy(), array[3:40:2] >> 3)


def test_preprocessing_layers(cifar_dir: Path) -> None:
    logit = _module(cifar_dir, bits=5, logit_alpha=0.1).preprocessing()
    assert [type(t) for t in logit] == [Rescale, Logit] and logit[0].bits == 5 and logit[1].alpha == 0.1
    assert [type(t) for t in _module(cifar_dir, preprocessing="centre").preprocessing()] == [Rescale, Centre]


# -- missing files and download -------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,files,source",
    [
        ("mnist", ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte"], "yann.lecun.com"),
        ("fashion_mnist", ["FashionMNIST/raw/train-images-idx3-ubyte"], "zalandoresearch"),
        ("cifar10", [f"cifar-10-batches-py/data_batch_{k}" for k in range(1, 6)] + ["cifar-10-batches-py/test_batch"],
         "cs.toronto.edu/~kriz"),
        ("imagenet32", ["imagenet32/train_data_batch_10.npz", "imagenet32/val_data.npz"], "image-net.org"),
        ("imagenet64", ["imagenet64/train_data_batch_1.npz"], "image-net.org"),
        ("celeba", ["celeba/list_eval_partition.txt", "celeba/img_align_celeba/000001.jpg"], "mmlab.ie.cuhk.edu.hk"),
    ],
)
def test_missing_set_names_full_paths_source_and_download(tmp_path: Path, name: str, files, source: str) -> None:
    with pytest.raises(FunnelrunError) as err:
        ImageDataModule(name, str(tmp_path / "absent"))
    message = str(err.value)
    assert all(str((tmp_path / "absent" / rel).resolve()) in message for rel in files), message
    assert source in message and "data.data_dir=" in message
    assert ("data.download=true" in message) == (not name.startswith("imagenet"))


def test_download_without_torchvision_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # not importable, even where it is installed
    with pytest.raises(FunnelrunError, match="data.download=true needs torchvision, which is not importable") as err:
        ImageDataModule("cifar10", str(tmp_path), download=True)
    assert "cifar-10-batches-py/test_batch" in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing fetched, nothing written
    with pytest.raises(FunnelrunError, match="torchvision has no downloader for imagenet32"):
        ImageDataModule("imagenet32", str(tmp_path), download=True)


# -- real MNIST and Fashion-MNIST -----------------------------------------------------------------
@pytest.mark.parametrize("name,folder,mean", [("mnist", "MNIST", 0.1307), ("fashion_mnist", "FashionMNIST", 0.2860)])
def test_real_idx_files(name: str, folder: str, mean: float) -> None:
    if not (SHARED_DATA / folder / "raw").is_dir():
        pytest.skip(f"{SHARED_DATA / folder} absent")
    splits = load_idx(name, SHARED_DATA)
    assert splits.train.shape == (60000, 1, 28, 28) and splits.test.shape == (10000, 1, 28, 28)
    assert splits.train.mean() / 255 == pytest.approx(mean, abs=5e-4)  # torchvision's normalisation constants
    dm = ImageDataModule(name, str(SHARED_DATA), val_size=10000, eval_batch_size=1000)
    assert (len(dm.train), len(dm.val), len(dm.test)) == (50000, 10000, 10000) and dm.bits == 8


# -- end to end -----------------------------------------------------------------------------------
def test_training_and_test_bpd_through_the_module(tmp_path: Path) -> None:
    """Digits (4 bits) through DensityEstimator and a Lightning Trainer with a throwaway model =
    preprocessing + ActNorm: the logged test BPD equals -mean log p(test batches) / (D ln 2)."""
    import lightning.pytorch as pl

    from funnelrun.models.flow import Flow
    from funnelrun.training.module import DensityEstimator
    from funnelrun.transforms.actnorm import ActNorm

    dm = ImageDataModule("digits", bits=4, batch_size=64, eval_batch_size=128, val_size=200, preprocessing="logit")
    model = Flow([*dm.preprocessing(), ActNorm(1)], dm.data_shape)
    module = DensityEstimator(model, lr=1e-2, bits=dm.bits)
    trainer = pl.Trainer(
        max_steps=3, val_check_interval=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    with torch.no_grad():
        log_p = torch.cat([model.log_prob(batch) for batch in dm.test_dataloader()]).double()
    assert module.results["test/examples"] == 360
    expected = -log_p.mean().item() / (64 * math.log(2))
    assert module.results["test/bpd"] == pytest.approx(expected, rel=1e-6)
    assert 0 < module.results["test/bpd"] < 8


TINY_IMAGE_NSF = ["model=nsf", "model.image.levels=1", "model.image.steps_per_level=1", "model.image.hidden_channels=4",
                  "model.image.num_res_blocks=1"]


def _fit_cifar(data_dir: Path, root: Path, seed: int = 0, stop_at: int | None = None, ckpt: str | None = None):
    """8 steps (an epoch is 5) of a tiny multi-scale NSF on the cached CIFAR files; ``stop_at``: stop
    there, keeping the checkpoint of that step."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    from funnelrun.builder import build_data, build_model
    from funnelrun.config import compose_config
    from funnelrun.training.module import DensityEstimator

    class StopAt(Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            trainer.should_stop = trainer.global_step == stop_at

    cfg = compose_config(["data=cifar10_5bit", f"data.data_dir={data_dir}", "data.val_size=10", "data.batch_size=10",
                          f"data.seed={seed}", *TINY_IMAGE_NSF])
    dm = build_data(cfg)
    torch.manual_seed(0)
    module = DensityEstimator(build_model(cfg, dm), lr=1e-2, bits=dm.bits)
    callbacks = [StopAt(), ModelCheckpoint(dirpath=root, every_n_train_steps=stop_at, save_top_k=-1)] if stop_at else []
    trainer = pl.Trainer(max_steps=8, limit_val_batches=0, logger=False, enable_checkpointing=bool(stop_at),
                         callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=root, use_distributed_sampler=False)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    assert trainer.global_step == (stop_at or 8)
    return module.model.state_dict()


def test_resumed_image_training_ends_where_the_uninterrupted_run_ends(cifar_dir: Path, tmp_path: Path) -> None:
    """Cached images, uint8 batches, noise drawn after the transfer (the data module's hook), through
    Lightning: stopped at step 3 and resumed from its checkpoint, the weights after step 8 are exactly
    those of the uninterrupted run (and another data seed changes them)."""
    whole = _fit_cifar(cifar_dir, tmp_path / "whole")
    _fit_cifar(cifar_dir, tmp_path / "part", stop_at=3)
    (ckpt,) = (tmp_path / "part").glob("*step=3*.ckpt")
    resumed = _fit_cifar(cifar_dir, tmp_path / "resumed", ckpt=str(ckpt))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    other_seed = _fit_cifar(cifar_dir, tmp_path / "other", seed=1)
    assert not all(torch.equal(whole[k], other_seed[k]) for k in whole)


# -- configs --------------------------------------------------------------------------------------
IMAGE_CONFIGS = {
    "mnist": ("mnist", 8, 256), "fashion_mnist": ("fashion_mnist", 8, 256),
    "cifar10_5bit": ("cifar10", 5, 512), "cifar10_8bit": ("cifar10", 8, 512),
    "imagenet32_5bit": ("imagenet32", 5, 512), "imagenet32_8bit": ("imagenet32", 8, 512),
    "imagenet64_5bit": ("imagenet64", 5, 256), "imagenet64_8bit": ("imagenet64", 8, 256),
    "celeba64": ("celeba", 8, 256), "digits": ("digits", 4, 128),
}


def test_image_configs_compose() -> None:
    from funnelrun.builder import build_data
    from funnelrun.config import compose_config

    for option, (name, bits, batch_size) in IMAGE_CONFIGS.items():
        data = compose_config([f"data={option}"]).data
        assert (data.name, data.bits, data.batch_size, data.download) == (name, bits, batch_size, False), option
    dm = build_data(compose_config(["data=digits", "data.preprocessing=centre"]))
    assert isinstance(dm, ImageDataModule) and dm.data_shape == (1, 8, 8) and len(dm.val) == 200
    with pytest.raises(FunnelrunError, match="preprocessing"):
        compose_config(["data=digits", "data.preprocessing=logt"])
