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
from funnelrun.data.images import ImageDataModule, carve_validation
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


def _ids(images: np.ndarray | torch.Tensor) -> set[int]:
    flat = np.asarray(images).reshape(len(images), -1).astype(int)
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


def _write_cifar(root: Path, train: np.ndarray, test: np.ndarray) -> None:
    """Five training batches and a test batch, dicts with bytes keys as the Python 2 originals."""
    for k, part in enumerate(np.array_split(train, 5), start=1):
        batch = {b"batch_label": b"training batch", b"labels": [0] * len(part), b"data": part.reshape(len(part), -1)}
        _file(root, f"cifar-10-batches-py/data_batch_{k}").write_bytes(pickle.dumps(batch, protocol=2))
    entry = {b"labels": [0] * len(test), b"data": test.reshape(len(test), -1)}
    _file(root, "cifar-10-batches-py/test_batch").write_bytes(pickle.dumps(entry, protocol=2))


def _write_imagenet(root: Path, size: int, train: np.ndarray, test: np.ndarray) -> None:
    for k, part in enumerate(np.array_split(train, 10), start=1):
        np.savez(_file(root, f"imagenet{size}/train_data_batch_{k}.npz"), data=part.reshape(len(part), -1),
                 labels=np.ones(len(part), dtype=np.int64), mean=np.zeros(3 * size * size))
    np.savez(_file(root, f"imagenet{size}/val_data.npz"), data=test.reshape(len(test), -1),
             labels=np.ones(len(test), dtype=np.int64))


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
    _write_cifar(tmp_path, train, test)
    splits = load_cifar10(tmp_path)
    assert np.array_equal(splits.train, train) and np.array_equal(splits.test, test)
    # CHW: the row's first 1024 values are the red plane
    row = pickle.loads((tmp_path / "cifar-10-batches-py/test_batch").read_bytes())[b"data"][0]
    assert np.array_equal(splits.test[0, 0].reshape(-1), row[:1024])


def test_cifar_corrupt_and_misshapen_batches(tmp_path: Path) -> None:
    _write_cifar(tmp_path, _numbered(20, (3, 32, 32)), _numbered(6, (3, 32, 32)))
    path = tmp_path / "cifar-10-batches-py/data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(FunnelrunError, match=r"cannot read .*data_batch_3: not a CIFAR-10 pickle batch"):
        load_cifar10(tmp_path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((4, 3000), np.uint8)}))
    with pytest.raises(FunnelrunError, match=r"data_batch_3.*shape \(N, 3072\), got uint8 array of shape \(4, 3000\)"):
        load_cifar10(tmp_path)


def test_imagenet_npz(tmp_path: Path) -> None:
    train, test = _numbered(30, (3, 32, 32)), _numbered(5, (3, 32, 32), start=300)
    _write_imagenet(tmp_path, 32, train, test)
    splits = load_imagenet(32, tmp_path)
    assert np.array_equal(splits.train, train) and np.array_equal(splits.test, test)


def test_imagenet_corrupt_and_wrong_size(tmp_path: Path) -> None:
    _write_imagenet(tmp_path, 32, _numbered(30, (3, 32, 32)), _numbered(5, (3, 32, 32)))
    path = tmp_path / "imagenet32/train_data_batch_7.npz"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(FunnelrunError, match=r"cannot read .*train_data_batch_7.npz: not a readable npz"):
        load_imagenet(32, tmp_path)
    _write_imagenet(tmp_path, 64, _numbered(30, (3, 32, 32)), _numbered(5, (3, 32, 32)))  # 32x32 rows
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
    assert np.array_equal(np.sort(np.unique(four_bits.test_data)), np.arange(16))  # v = 15 and v = 16 share 15


# -- the DataModule -------------------------------------------------------------------------------
@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    _write_cifar(tmp_path, _numbered(60, (3, 32, 32)), _numbered(12, (3, 32, 32), start=1000))
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
    assert torch.equal(other.val_data, dm.val_data)  # the split never depends on data.seed
    with pytest.raises(FunnelrunError, match="data.val_size=60: cifar10 has 60 training images"):
        _module(cifar_dir, val_size=60)
    with pytest.raises(FunnelrunError, match="no official validation split"):
        _module(cifar_dir, val_size=None)


def test_carve_validation_keeps_file_order() -> None:
    train, val = carve_validation(np.arange(100), 30, "x")
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0) and len(train) == 70


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
    train_batch = next(iter(dm.train_dataloader()))
    assert train_batch.shape == (8, 3, 32, 32) and 0 <= train_batch.min() and train_batch.max() < 2**bits


def test_top_level_stays_below_the_next_integer() -> None:
    from funnelrun.data.images import DequantizedImages

    images = DequantizedImages(torch.full((200, 1, 64, 64), 255, dtype=torch.uint8), seed=0)
    values = torch.stack([images[i] for i in range(200)])
    assert values.max() < 256 and values.min() >= 255


def test_eval_noise_fixed_by_index_over_runs_seeds_and_ranks(cifar_dir: Path) -> None:
    dm = _module(cifar_dir)
    first = torch.cat(list(dm.test_dataloader()))
    assert torch.equal(first, torch.cat(list(_module(cifar_dir, seed=7).test_dataloader())))
    # rank r of 2 takes examples r, r + 2, ...: each example gets the noise it gets on one rank
    for rank in range(2):
        shard = Subset(dm.test, range(rank, len(dm.test), 2))
        assert torch.equal(torch.stack([shard[i] for i in range(len(shard))]), first[rank::2])


def test_training_noise_fresh_per_step_and_reproduced_on_resume(cifar_dir: Path) -> None:
    dm = _module(cifar_dir, batch_size=25)  # 50 training images: 2 steps per epoch
    step0, step1 = dm.train[(0, 7)], dm.train[(1, 7)]
    assert torch.equal(step0.floor(), step1.floor()) and not torch.equal(step0, step1)
    assert torch.equal(dm.train[(0, 7)], step0)
    assert not torch.equal(_module(cifar_dir, seed=4).train[(0, 7)], step0)
    loader = dm.train_dataloader()
    batches = [b for _, b in zip(range(4), (b for _ in range(2) for b in loader))]
    resumed = _module(cifar_dir, batch_size=25)
    resumed.load_state_dict({"global_step": 3})
    assert torch.equal(next(iter(resumed.train_dataloader())), batches[3])


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
