"""The catalogue of bad inputs, run through the CLI: each exits non-zero with a message that names
the problem, and leaves an earlier run's outputs byte-for-byte untouched.

Config mistakes are made while *resuming* an earlier, finished run (`hydra.run.dir=<it>
ckpt_path=last`), the situation where there is most to lose.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from funnelrun.cli import main

from conftest import TINY, TINY_NSF

#: (id, overrides, fragments the error message must contain)
CONFIG_MISTAKES = [
    ("misspelt model option", ["model=f_nfs"], ["f_nfs", "f_nsf"]),
    ("misspelt data option", ["data=four_circle"], ["four_circle", "four_circles"]),
    ("misspelt model key", ["model.hiden_features=3"], ["hiden_features"]),
    ("misspelt top-level key", ["sed=1"], ["sed"]),
    ("misspelt group name", ["modle=nsf"], ["modle"]),
    ("wrong value type", ["model.num_bins=many"], ["num_bins"]),
    ("float for an int", ["trainer.max_steps=1.5"], ["max_steps"]),
    ("invalid choice", ["model.transform=coupl"], ["transform", "coupling"]),
    ("funnel drops every dimension", ["model.latent_dim=0"], ["model.latent_dim=0", "at least 1"]),
    ("funnel drops no dimension", ["model.latent_dim=2"], ["drop between 1 and 1"]),
    ("funnel reduction larger than data", ["model.latent_dim=null", "model.dim_reduction=5"], ["drop between 1 and 1"]),
    ("funnel level past the last step", ["model.funnel_level=2"], ["funnel_level=2"]),
    ("nsf asked to reduce dimension", ["model=nsf", "model.latent_dim=1"], ["preserves dimension", "f_nsf"]),
    ("zero spline bins", ["model.num_bins=0"], ["model.num_bins=0"]),
    ("dropout of 1.5", ["model.dropout=1.5"], ["model.dropout=1.5"]),
    ("negative learning rate", ["optim.lr=-1"], ["optim.lr=-1"]),
    ("negative max_steps", ["trainer.max_steps=-5"], ["trainer.max_steps=-5"]),
    ("zero batch size", ["data.batch_size=0"], ["data.batch_size=0"]),
    ("mixed precision", ["trainer.precision=bf16-mixed"], ["trainer.precision=bf16-mixed", "32-true"]),
    # while resuming a finished run, refused as a change of its settings before the data are read
    # (a fresh run gets "fewer than one batch": tests/training/test_cli.py)
    ("training split smaller than a batch", ["data.n_train=10", "trainer.max_steps=12"],
     ["finished run with other settings", "data.n_train: config.yaml records 512, this command has 10"]),
]


def _snapshot(run_dir: Path) -> dict[str, str]:
    """Hashes of every file of a run, except Hydra's log file (appended to, never rewritten)."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != "funnelrun.log"
    }


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """One finished tiny F-NSF run (made once, copied per test)."""
    run_dir = tmp_path_factory.mktemp("earlier") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["funnelrun", f"hydra.run.dir={run_dir}", *TINY])
        GlobalHydra.instance().clear()
        try:
            main()
        finally:
            GlobalHydra.instance().clear()
    assert (run_dir / "metrics.json").is_file()
    return run_dir


@pytest.fixture
def earlier(earlier_run, tmp_path) -> Path:
    run_dir = tmp_path / "earlier"
    shutil.copytree(earlier_run, run_dir)
    return run_dir


def _assert_clear_failure(result, fragments, earlier: Path, before: dict[str, str]) -> None:
    assert result.code != 0
    for fragment in fragments:
        assert fragment in result.err, f"{fragment!r} not in:\n{result.err[-2000:]}"
    assert "Traceback" not in result.err
    after = _snapshot(earlier)
    assert {k: after.get(k) for k in before} == before, "an earlier output was changed"


@pytest.mark.parametrize("overrides,fragments", [c[1:] for c in CONFIG_MISTAKES], ids=[c[0] for c in CONFIG_MISTAKES])
def test_config_mistake_while_resuming(run_cli, earlier, overrides, fragments):
    before = _snapshot(earlier)
    sizes = TINY_NSF if "model=nsf" in overrides else TINY
    result = run_cli(earlier, *sizes, *overrides, "ckpt_path=last")
    _assert_clear_failure(result, fragments, earlier, before)


def test_starting_a_new_run_in_an_earlier_runs_directory(run_cli, earlier):
    before = _snapshot(earlier)
    result = run_cli(earlier, *TINY)
    _assert_clear_failure(result, ["already holds a run", "in a new directory", "trainer.max_steps="], earlier, before)


def test_checkpoint_of_another_model(run_cli, earlier, tmp_path):
    before = _snapshot(earlier)
    result = run_cli(tmp_path / "new", *TINY_NSF, "model=nsf", f"ckpt_path={earlier / 'checkpoints' / 'last.ckpt'}")
    _assert_clear_failure(result, ["another model", "model=/data="], earlier, before)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint(run_cli, earlier, damage):
    ckpt = earlier / "checkpoints" / "last.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes({"garbage": b"not a checkpoint" * 10, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    before = _snapshot(earlier)
    result = run_cli(earlier, *TINY, "ckpt_path=last")
    _assert_clear_failure(result, ["could not read checkpoint", str(ckpt)], earlier, before)


def test_missing_checkpoint_file(run_cli, earlier, tmp_path):
    before = _snapshot(earlier)
    result = run_cli(tmp_path / "new", *TINY, f"ckpt_path={tmp_path / 'nope.ckpt'}")
    _assert_clear_failure(result, ["no checkpoint at", "nope.ckpt"], earlier, before)


def test_resume_of_a_directory_without_a_run(run_cli, earlier, tmp_path):
    before = _snapshot(earlier)
    result = run_cli(tmp_path / "empty", *TINY, "ckpt_path=last")
    _assert_clear_failure(result, ["no checkpoint", "hydra.run.dir"], earlier, before)


def test_read_only_output_directory(run_cli, earlier, tmp_path, monkeypatch):
    before = _snapshot(earlier)
    target = tmp_path / "readonly"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == target and mode & os.W_OK else real_access(p, mode))
    result = run_cli(target, *TINY)
    _assert_clear_failure(result, ["cannot write", str(target)], earlier, before)


def test_full_disk_while_writing_outputs(run_cli, earlier, tmp_path, monkeypatch):
    import tempfile

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "full" / "config.yaml"))

    monkeypatch.setattr(tempfile, "mkstemp", no_space)
    before = _snapshot(earlier)
    result = run_cli(tmp_path / "full", *TINY)
    _assert_clear_failure(result, ["No space left on device", "hydra.run.dir"], earlier, before)


def _write_bytes(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _npy(array) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def _data_faults():
    import numpy as np

    rng = np.random.default_rng(0)
    good_miniboone = rng.normal(size=(400, 43))
    nan_rows = good_miniboone.copy()
    nan_rows[[5, 390]] = np.nan
    return [
        ("missing data directory", "power", None, ["power/data.npy", "zenodo.org/record/1161203", "data.data_dir"]),
        ("garbage npy", "power", ("power/data.npy", b"\x00garbage" * 20), ["power/data.npy"]),
        ("truncated npy", "miniboone", ("miniboone/data.npy", _npy(good_miniboone)[:-999]), ["miniboone/data.npy"]),
        ("NaN rows", "miniboone", ("miniboone/data.npy", _npy(nan_rows)), ["NaN"]),
        ("zero rows", "miniboone", ("miniboone/data.npy", _npy(np.zeros((0, 43)))), ["MINIBOONE", "0 rows"]),
        ("corrupt pickle", "gas", ("gas/ethylene_CO.pickle", b"\x80\x04garbage"), ["ethylene_CO.pickle"]),
        ("truncated csv", "hepmass", ("hepmass/1000_train.csv", b"# label,f0,f1\n1,0.5,"), ["1000_"]),
        ("corrupt hdf5", "bsds300", ("BSDS300/BSDS300.hdf5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 50), ["BSDS300.hdf5"]),
    ]


@pytest.mark.parametrize("name,dataset,file,fragments", _data_faults(), ids=[f[0] for f in _data_faults()])
def test_bad_data_files(run_cli, earlier, tmp_path, name, dataset, file, fragments):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if file is not None:
        _write_bytes(data_dir, *file)
    before = _snapshot(earlier)
    model_only = [o for o in TINY_NSF if not o.startswith("data.")]
    result = run_cli(earlier, *model_only, "model=nsf", f"data={dataset}", f"data.data_dir={data_dir}", "ckpt_path=last")
    _assert_clear_failure(result, fragments, earlier, before)


def _image_data_faults():
    """(id, data option, files written under data_dir, fragments): every other file of the set is intact."""
    import gzip
    import pickle
    import struct

    import numpy as np

    def idx(magic: int, n: int = 2) -> bytes:
        return struct.pack(">iiii", magic, n, 28, 28) + bytes(n * 28 * 28)

    def cifar(n: int = 2) -> bytes:
        return pickle.dumps({b"data": np.zeros((n, 3072), np.uint8), b"labels": [0] * n}, protocol=2)

    def npz(n: int = 2) -> bytes:
        return _npz(data=np.zeros((n, 3072), np.uint8))

    cifar_files = {f"cifar-10-batches-py/data_batch_{k}": cifar() for k in range(1, 6)}
    imagenet_files = {f"imagenet32/train_data_batch_{k}.npz": npz() for k in range(1, 11)}
    return [
        ("corrupt IDX", "mnist",
         {"MNIST/raw/train-images-idx3-ubyte": idx(2049),
          "MNIST/raw/t10k-images-idx3-ubyte.gz": gzip.compress(idx(2051))},
         ["MNIST/raw/train-images-idx3-ubyte", "magic number 2049"]),
        ("corrupt CIFAR pickle", "cifar10_8bit",
         {**cifar_files, "cifar-10-batches-py/data_batch_2": b"\x80\x02garbage",
          "cifar-10-batches-py/test_batch": cifar()},
         ["cifar-10-batches-py/data_batch_2", "not a CIFAR-10 pickle batch"]),
        ("corrupt npz", "imagenet32_5bit",
         {**imagenet_files, "imagenet32/train_data_batch_4.npz": npz()[:100],
          "imagenet32/val_data.npz": npz()},
         ["imagenet32/train_data_batch_4.npz", "not a readable npz"]),
        ("missing image data directory", "cifar10_5bit", {},
         ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch", "cs.toronto.edu",
          "data.download=true"]),
    ]


def _npz(**arrays) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "dataset,files,fragments", [f[1:] for f in _image_data_faults()], ids=[f[0] for f in _image_data_faults()]
)
def test_bad_image_files(run_cli, earlier, tmp_path, dataset, files, fragments):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for rel, data in files.items():
        _write_bytes(data_dir, rel, data)
    before = _snapshot(earlier)
    model_only = [o for o in TINY_NSF if not o.startswith("data.")]
    result = run_cli(earlier, *model_only, "model=nsf", f"data={dataset}", f"data.data_dir={data_dir}", "ckpt_path=last")
    _assert_clear_failure(result, fragments, earlier, before)


#: (id, image-model overrides on digits (1x8x8), fragments of the error)
IMAGE_MODEL_MISTAKES = [
    ("conv-funnel latent no tiling reaches", ["model=f_nsf", "model.latent_dim=5", "model.dim_reduction=null"],
     ["latent_dim=5", "16", "4"]),
    ("max-pool funnel latent out of reach", ["model=f_nsf", "model.image.funnel=maxpool",
                                                  "model.latent_dim=1", "model.dim_reduction=null"], ["latent"]),
    ("ldmask model on vector data", ["model=realnvp_ldmask", "data=four_circles"], ["image"]),
]


@pytest.mark.parametrize("overrides,fragments", [m[1:] for m in IMAGE_MODEL_MISTAKES],
                         ids=[m[0] for m in IMAGE_MODEL_MISTAKES])
def test_image_model_mistakes(run_cli, earlier, overrides, fragments):
    before = _snapshot(earlier)
    data = [] if any(o.startswith("data=") for o in overrides) else ["data=digits"]
    result = run_cli(earlier, *data, *overrides, "model.image.hidden_channels=4", "ckpt_path=last")
    _assert_clear_failure(result, fragments, earlier, before)
