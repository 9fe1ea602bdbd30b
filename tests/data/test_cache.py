"""The prepared-data cache (funnelrun/data/cache.py): written once under a lock, memory-mapped, keyed by
the source files, corrupt versions detected and rebuilt, read-only data directories handled."""
from __future__ import annotations

import errno
import multiprocessing
import os
import pathlib
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from funnelrun.data import cache
from funnelrun.data.cache import CACHE_FOLDER, CacheUnwritable, cache_key, cached_splits
from funnelrun.data.cifar import cifar10_sources, load_cifar10
from funnelrun.data.image_files import Part, SourceFiles
from funnelrun.data.imagenet import imagenet_sources, load_imagenet
from funnelrun.data.images import ImageDataModule
from funnelrun.data.synthetic import random_images, write_cifar10, write_imagenet
from funnelrun.errors import FunnelrunError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def imagenet_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_imagenet(root, 32, random_images(100, (3, 32, 32), 1), random_images(20, (3, 32, 32), 2))
    return root


def _version(root: Path, name: str = "imagenet32") -> Path:
    """The one cache version of ``name`` under ``root``."""
    versions = [p for p in (root / CACHE_FOLDER / name).iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(versions) == 1, versions
    return versions[0]


def test_first_use_writes_the_cache_later_ones_map_it(imagenet_dir: Path, capsys) -> None:
    expected = load_imagenet(32, imagenet_dir)
    first = cached_splits(imagenet_sources(32, imagenet_dir))
    assert "preparing the cache of imagenet32" in capsys.readouterr().err
    second = cached_splits(imagenet_sources(32, imagenet_dir))
    assert capsys.readouterr().err == ""  # nothing rebuilt, nothing said
    for splits in (first, second):
        assert isinstance(splits.train, np.memmap) and not splits.train.flags.writeable and splits.val is None
        assert np.array_equal(splits.train, expected.train) and np.array_equal(splits.test, expected.test)
    version = _version(imagenet_dir)
    assert version.name == cache_key(imagenet_sources(32, imagenet_dir))
    assert sorted(p.name for p in version.iterdir()) == ["manifest.json", "sources.json", "test.npy", "train.npy"]
    assert not list((imagenet_dir / CACHE_FOLDER / "imagenet32").glob(".building-*"))


def test_cifar_parts_of_unknown_size_and_a_cache_dir_elsewhere(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data", random_images(50, (3, 32, 32), 0), random_images(10, (3, 32, 32), 1))
    splits = cached_splits(cifar10_sources(tmp_path / "data"), tmp_path / "elsewhere")
    expected = load_cifar10(tmp_path / "data")
    assert np.array_equal(splits.train, expected.train) and np.array_equal(splits.test, expected.test)
    assert (tmp_path / "elsewhere" / "cifar10").is_dir() and not (tmp_path / "data" / CACHE_FOLDER).exists()


def test_a_changed_source_rebuilds_and_replaces_the_old_version(imagenet_dir: Path, capsys) -> None:
    cached_splits(imagenet_sources(32, imagenet_dir))
    old = _version(imagenet_dir)
    new_test = random_images(20, (3, 32, 32), 9)
    path = imagenet_dir / "imagenet32" / "val_data.npz"
    np.savez(path, data=new_test.reshape(20, -1))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime, even on a coarse clock
    capsys.readouterr()
    splits = cached_splits(imagenet_sources(32, imagenet_dir))
    err = capsys.readouterr().err
    assert "1 source file(s) changed" in err and "imagenet32/val_data.npz had size" in err, err
    assert np.array_equal(splits.test, new_test)
    assert not old.exists() and _version(imagenet_dir) != old


@pytest.mark.parametrize(
    "damage,reason",
    [
        (lambda v: (v / "train.npy").write_bytes((v / "train.npy").read_bytes()[:-100]), "truncated"),
        (lambda v: (v / "train.npy").unlink(), "train.npy is missing"),
        (lambda v: (v / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda v: (v / "manifest.json").write_text("{not json"), "manifest.json is unreadable"),
        (lambda v: (v / "manifest.json").write_text('{"format": 1, "key": "x"}'), "does not describe this cache"),
        (lambda v: _flip_last_byte(v / "test.npy"), "checksums of its sampled blocks"),
        (lambda v: (v / "test.npy").write_bytes(b"\x93NUMPY" + bytes((v / "test.npy").stat().st_size - 6)),
         "not a readable .npy file"),
    ],
    ids=["truncated", "missing array", "no manifest", "garbled manifest", "foreign manifest", "flipped byte",
         "bad header"],
)
def test_a_corrupt_cache_is_reported_and_rebuilt(imagenet_dir: Path, capsys, damage, reason: str) -> None:
    expected = load_imagenet(32, imagenet_dir)
    cached_splits(imagenet_sources(32, imagenet_dir))
    damage(_version(imagenet_dir))
    capsys.readouterr()
    splits = cached_splits(imagenet_sources(32, imagenet_dir))
    err = capsys.readouterr().err
    assert "is corrupt" in err and reason in err and "rebuilding" in err, err
    assert np.array_equal(splits.train, expected.train) and np.array_equal(splits.test, expected.test)
    assert cached_splits(imagenet_sources(32, imagenet_dir)) is not None and capsys.readouterr().err == ""


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_killed_build_leaves_nothing_a_reader_trusts(imagenet_dir: Path, monkeypatch) -> None:
    """A build dying half-way (here: the disk fills) leaves no version; the error says how much room it
    needs; the next run cleans up and builds."""
    real_write = cache._write_durably

    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_write_durably", full_disk)
    with pytest.raises(FunnelrunError, match=r"No space left on device\); it needs about 0.4 MB.*data.cache_dir="):
        cached_splits(imagenet_sources(32, imagenet_dir))
    folder = imagenet_dir / CACHE_FOLDER / "imagenet32"
    assert [p.name for p in folder.iterdir()] == [".lock"]
    monkeypatch.setattr(cache, "_write_durably", real_write)
    (folder / ".building-123-dead").mkdir()  # what SIGKILL during a build leaves
    cached_splits(imagenet_sources(32, imagenet_dir))
    assert sorted(p.name for p in folder.iterdir())[0] == ".lock" and not list(folder.glob(".building-*"))


def test_a_corrupt_source_file_leaves_no_cache(imagenet_dir: Path) -> None:
    path = imagenet_dir / "imagenet32" / "train_data_batch_3.npz"
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(good) // 2] ^= 0xFF  # inside the images: the header reads, the CRC check when reading them fails
    path.write_bytes(bytes(bad))
    with pytest.raises(FunnelrunError, match=r"train_data_batch_3.npz: not a readable npz.*Bad CRC-32"):
        cached_splits(imagenet_sources(32, imagenet_dir))
    folder = imagenet_dir / CACHE_FOLDER / "imagenet32"
    assert [p.name for p in folder.iterdir()] == [".lock"]
    path.write_bytes(good)
    assert np.array_equal(cached_splits(imagenet_sources(32, imagenet_dir)).train, load_imagenet(32, imagenet_dir).train)


# -- concurrency: ranks and sweep jobs starting at once -------------------------------------------
def _slow_read(log: Path, images: np.ndarray) -> np.ndarray:
    with log.open("a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(0.3)
    return images


def _slow_sources(root: Path) -> SourceFiles:
    """A set whose parts take 0.3 s each to read and log who read them."""
    train, test = random_images(40, (3, 4, 4), 0), random_images(8, (3, 4, 4), 1)
    log = root / "reads.log"
    return SourceFiles("slow", root, (3, 4, 4), (("reads.log", 0, 0),), {
        "train": (Part(partial(_slow_read, log, train[:20]), rows=20), Part(partial(_slow_read, log, train[20:]), 20)),
        "test": (Part(partial(_slow_read, log, test)),),
    })


def _open_in_child(root: str, queue) -> None:
    splits = cached_splits(_slow_sources(Path(root)))
    queue.put((os.getpid(), splits.train.sum().item(), splits.test.sum().item(), type(splits.train).__name__))


def test_concurrent_processes_build_once_and_all_map_it(tmp_path: Path, capfd) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_open_in_child, args=(str(tmp_path), queue)) for _ in range(4)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    readers = (tmp_path / "reads.log").read_text().split()
    assert len(readers) == 3 and len(set(readers)) == 1  # three parts, read by one process: one build
    expected = _slow_sources(tmp_path)
    sums = {(r[1], r[2]) for r in results}
    assert sums == {(int(np.concatenate([p.read() for p in expected.splits["train"]]).sum()),
                     int(expected.splits["test"][0].read().sum()))}
    assert {r[3] for r in results} == {"memmap"}
    assert "waiting for another process that is preparing the cache of slow" in capfd.readouterr().err


# -- read-only data directories -------------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    """Make every directory under a given root refuse new entries, as a read-only mount does (a
    chmod would not stop the root user that tests may run as)."""
    roots: list[Path] = []
    real_mkdir, real_open = pathlib.Path.mkdir, os.open

    def refused(path) -> bool:
        return any(Path(path).resolve().is_relative_to(root) for root in roots)

    def mkdir(self, *args, **kwargs):
        if refused(self):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and refused(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    return lambda root: roots.append(Path(root).resolve())


def test_read_only_data_dir_reads_into_memory_and_says_how_to_cache(imagenet_dir: Path, read_only, capsys) -> None:
    read_only(imagenet_dir)
    with pytest.raises(CacheUnwritable, match="Read-only file system"):
        cached_splits(imagenet_sources(32, imagenet_dir))
    dm = ImageDataModule("imagenet32", str(imagenet_dir), val_size=10, batch_size=10)
    err = capsys.readouterr().err
    assert "cannot be written" in err and "Reading imagenet32 into memory instead" in err and "data.cache_dir=" in err
    assert np.array_equal(dm.test_data.numpy(), load_imagenet(32, imagenet_dir).test)
    assert not (imagenet_dir / CACHE_FOLDER).exists()


def test_read_only_data_dir_with_a_cache_written_before_maps_it(imagenet_dir: Path, read_only, capsys) -> None:
    cached_splits(imagenet_sources(32, imagenet_dir))
    read_only(imagenet_dir)
    capsys.readouterr()
    splits = cached_splits(imagenet_sources(32, imagenet_dir))
    assert isinstance(splits.train, np.memmap) and capsys.readouterr().err == ""


def test_an_unwritable_cache_dir_is_an_error_naming_it(imagenet_dir: Path, tmp_path: Path, read_only) -> None:
    read_only(tmp_path / "ro")
    with pytest.raises(FunnelrunError, match=r"data.cache_dir=.*ro must be a directory this process can write"):
        ImageDataModule("imagenet32", str(imagenet_dir), val_size=10, cache_dir=str(tmp_path / "ro"))


@pytest.mark.skipif(os.geteuid() == 0, reason="the root user writes into read-only directories")
def test_a_chmod_read_only_data_dir_falls_back_to_memory(imagenet_dir: Path, capsys) -> None:
    imagenet_dir.chmod(0o555)
    try:
        dm = ImageDataModule("imagenet32", str(imagenet_dir), val_size=10, batch_size=10)
    finally:
        imagenet_dir.chmod(0o755)
    assert "Reading imagenet32 into memory instead" in capsys.readouterr().err and len(dm.test) == 20


# -- through the data module and the config ------------------------------------------------------
def test_the_data_module_maps_the_cache_and_takes_n_bits_and_validation_from_it(imagenet_dir: Path) -> None:
    dm = ImageDataModule("imagenet32", str(imagenet_dir), bits=5, val_size=30, batch_size=10)
    in_memory = ImageDataModule("imagenet32", str(imagenet_dir), bits=5, val_size=30, batch_size=10, cache=False)
    assert isinstance(dm.train_data.array, np.memmap) and not isinstance(in_memory.train_data.array, np.memmap)
    for split in ("train_data", "val_data", "test_data"):
        assert np.array_equal(getattr(dm, split).numpy(), getattr(in_memory, split).numpy())
    assert dm.train_data.numpy().max() < 32 and len(dm.train) == 70 and len(dm.val) == 30


def test_cache_dir_from_the_config(imagenet_dir: Path, tmp_path: Path) -> None:
    from funnelrun.builder import build_data
    from funnelrun.config import compose_config

    cfg = compose_config(["data=imagenet32_5bit", f"data.data_dir={imagenet_dir}", "data.val_size=10",
                          f"data.cache_dir={tmp_path / 'cache'}"])
    dm = build_data(cfg)
    assert Path(dm.train_data.array.filename).is_relative_to(tmp_path / "cache" / "imagenet32")
    off = build_data(compose_config(["data=imagenet32_5bit", f"data.data_dir={imagenet_dir}", "data.val_size=10",
                                     "data.cache=false"]))
    assert not isinstance(off.train_data.array, np.memmap)
