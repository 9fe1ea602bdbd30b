"""The catalogue of bad inputs (issues 14, 16): each case is one command of a funnelrun tool, run
in this process as a user types it, next to an earlier *finished* run whose files must stay
byte-for-byte the same. tests/bad_inputs/test_catalogue.py runs every case; so does
scripts/bad_input_catalogue.py, which counts the outcomes.

A case's ``args`` and ``fragments`` may name ``{earlier}`` (a copy of the finished run, made for the
case) and ``{tmp}`` (an empty directory of the case). ``setup(earlier, tmp, monkeypatch)`` damages a
file or the file system first. ``expect``:

- ``"error"``: a clear error: non-zero exit, every fragment in the message, no traceback;
- ``"warning"``: the command runs (exit 0) and its output says what is wrong (a diverged result, a
  setting that does nothing);
- ``"notice"``: exit status free (``funnelrun-report`` lists an unreadable run, ``funnelrun-check``
  says what it certified), the fragments in the output, no traceback.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import sys
import tempfile
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from conftest import TINY, TINY_NSF

Setup = Callable[[Path, Path, pytest.MonkeyPatch], None]


@dataclass
class Case:
    id: str
    args: list[str]
    fragments: list[str]
    tool: str = "funnelrun"
    setup: Optional[Setup] = None
    expect: str = "error"
    #: the case may add files to the earlier run (a warning case that extends it); else nothing new
    adds_files: bool = False


# -- running a tool in this process -------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.text


_TOOL_MAINS = {
    "funnelrun-sample": "sample_main",
    "funnelrun-eval": "eval_main",
    "funnelrun-check": "check_main",
    "funnelrun-report": "report_main",
}


def run_tool(tool: str, argv: list[str]) -> Outcome:
    """Run ``tool argv`` as its console script would, in this process; an exception escaping it is
    printed as the interpreter would (a traceback) with exit status 1."""
    from funnelrun import cli

    out, err = io.StringIO(), io.StringIO()
    code, saved_argv, threads = 0, sys.argv, torch.get_num_threads()
    GlobalHydra.instance().clear()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            if tool == "funnelrun":
                sys.argv = ["funnelrun", *argv]
                cli.main()
            else:
                getattr(cli, _TOOL_MAINS[tool])(argv)
        except SystemExit as exc:
            if isinstance(exc.code, str):  # sys.exit("message") prints it and exits 1
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - what a user would see: a traceback
            traceback.print_exc()
            code = 1
        finally:
            sys.argv = saved_argv
            torch.set_num_threads(threads)
            GlobalHydra.instance().clear()
    return Outcome(code, out.getvalue(), err.getvalue())


def make_earlier_run(run_dir: Path) -> Path:
    """One finished tiny F-NSF run on four circles (a few seconds)."""
    outcome = run_tool("funnelrun", [f"hydra.run.dir={run_dir}", *TINY])
    assert outcome.code == 0 and (run_dir / "metrics.json").is_file(), outcome.text[-3000:]
    return run_dir


def snapshot(run_dir: Path) -> dict[str, Optional[str]]:
    """Hash of every file of a run (None for a directory), except funnelrun.log (appended to)."""
    return {
        str(p.relative_to(run_dir)): None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*")) if p.name != "funnelrun.log"
    }


@dataclass
class Verdict:
    case: Case
    #: the command's arguments and the fragments its output must hold, with the paths filled in
    args: list[str]
    fragments: list[str]
    outcome: Outcome
    #: paths of the earlier run changed, removed or (unless the case may) added
    changed: list[str] = field(default_factory=list)

    @property
    def clear(self) -> bool:
        """The outcome the case expects: the right exit status, every fragment, no traceback."""
        text = self.outcome.err if self.case.expect == "error" else self.outcome.text
        ok_code = {"error": self.outcome.code != 0, "warning": self.outcome.code == 0}.get(self.case.expect, True)
        return ok_code and not self.outcome.traceback and all(f in text for f in self.fragments)

    def why(self) -> str:
        missing = [f for f in self.fragments if f not in self.outcome.text]
        return (f"{self.case.tool} {' '.join(self.args)}\nexit {self.outcome.code}; traceback: "
                f"{self.outcome.traceback}; missing fragments: {missing}; changed: {self.changed}\n"
                f"--- output (tail) ---\n{self.outcome.text[-3000:]}")


def check_case(case: Case, earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Verdict:
    """Run ``case`` beside the finished run ``earlier`` (a copy it may damage), in directory ``tmp``."""
    values = {"earlier": str(earlier), "tmp": str(tmp)}
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    if case.setup is not None:
        case.setup(earlier, tmp, monkeypatch)
    before = snapshot(earlier)
    args = [a.format(**values) for a in case.args]
    try:
        outcome = run_tool(case.tool, args)
    finally:
        monkeypatch.undo()  # a simulated read-only file system must not hide the check below
    after = snapshot(earlier)
    changed = [k for k in before if after.get(k, "<gone>") != before[k]]
    if not case.adds_files:
        changed += [f"{k} (new)" for k in after if k not in before]
    return Verdict(case, args, [f.format(**values) for f in case.fragments], outcome, changed)


# -- file-system faults -------------------------------------------------------------------------
def read_only(root_of: Callable[[Path, Path], Path]) -> Setup:
    """A setup that makes the file system under ``root_of(earlier, tmp)`` read-only: every write,
    directory, rename or removal there fails with EROFS, as on a read-only mount (tests run as root,
    where permission bits stop nothing)."""

    def setup(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        root = root_of(earlier, tmp).resolve()

        def inside(path: Any) -> bool:
            try:
                return Path(os.fsdecode(path)).resolve().is_relative_to(root)
            except (TypeError, ValueError):
                return False

        def refuse(path: Any) -> OSError:
            return OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

        def guard(real: Callable[..., Any], write: Callable[..., bool] = lambda *a, **k: True) -> Callable[..., Any]:
            def guarded(path: Any, *args: Any, **kwargs: Any) -> Any:
                if inside(path) and write(path, *args, **kwargs):
                    raise refuse(path)
                return real(path, *args, **kwargs)

            return guarded

        import builtins

        def writes(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> bool:
            return any(c in mode for c in "wax+")

        def writes_flags(path: Any, flags: int, *args: Any, **kwargs: Any) -> bool:
            return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))

        for module, name, test in [
            (builtins, "open", writes), (io, "open", writes), (os, "open", writes_flags), (os, "mkdir", None),
            (os, "remove", None), (os, "unlink", None), (os, "rmdir", None), (os, "replace", None),
            (os, "rename", None), (os, "truncate", None),
        ]:
            monkeypatch.setattr(module, name, guard(getattr(module, name), *(() if test is None else (test,))))
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if inside(p) and mode & os.W_OK
                            else real_access(p, mode, **kw))

    return setup


def full_disk(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "full" / "config.yaml"))

    monkeypatch.setattr(tempfile, "mkstemp", no_space)


def a_file_at(rel: str, data: bytes = b"not a directory\n") -> Setup:
    def setup(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return setup


# -- damaged checkpoints ------------------------------------------------------------------------
def checkpoint_holding(make: Callable[[dict[str, Any]], Any]) -> Setup:
    """Replace the earlier run's last.ckpt by ``make(<its contents>)``, saved with torch.save."""

    def setup(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        ckpt = earlier / "checkpoints" / "last.ckpt"
        contents = torch.load(ckpt, map_location="cpu", weights_only=True)
        torch.save(make(contents), ckpt)

    return setup


def checkpoint_bytes(make: Callable[[bytes], bytes]) -> Setup:
    def setup(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        ckpt = earlier / "checkpoints" / "last.ckpt"
        ckpt.write_bytes(make(ckpt.read_bytes()))

    return setup


def _wrong_shape(contents: dict[str, Any]) -> dict[str, Any]:
    weights = contents["state_dict"]
    key = next(k for k, v in weights.items() if v.ndim == 2)
    weights[key] = torch.zeros(weights[key].shape[0] + 1, weights[key].shape[1])
    return contents


# -- damaged data files -------------------------------------------------------------------------
def data_files(files: Callable[[], dict[str, bytes]]) -> Setup:
    """Write ``files()`` (relative path -> bytes) under ``<tmp>/data``."""

    def setup(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        root = tmp / "data"
        root.mkdir(exist_ok=True)
        for rel, data in files().items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return setup


def _npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _miniboone(columns: int = 43, rows: int = 400, dtype: Any = np.float64) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, columns)).astype(dtype)


def _with(array: np.ndarray, change: Callable[[np.ndarray], None]) -> np.ndarray:
    array = array.copy()
    change(array)
    return array


def _hdf5(**datasets: np.ndarray) -> bytes:
    import h5py

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.hdf5"
        with h5py.File(path, "w") as f:
            for key, value in datasets.items():
                f[key] = value
        return path.read_bytes()


def _jpeg(width: int = 178, height: int = 218) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 64, 32)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _celeba(partition: bytes) -> dict[str, bytes]:
    names = ("000001.jpg", "000002.jpg", "000003.jpg")
    return {"celeba/list_eval_partition.txt": partition,
            **{f"celeba/img_align_celeba/{name}": _jpeg() for name in names}}


_CELEBA_PARTITION = b"000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n"


def _decompression_bomb(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow refuses images of more than 2 * MAX_IMAGE_PIXELS pixels: lower the limit below CelebA's."""
    from PIL import Image

    data_files(lambda: _celeba(_CELEBA_PARTITION))(earlier, tmp, monkeypatch)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)


def _unreadable_miniboone(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MINIBOONE's data.npy present but not readable by this user (root reads anything: simulated)."""
    data_files(lambda: {"miniboone/data.npy": _npy(_miniboone())})(earlier, tmp, monkeypatch)
    real_load = np.load

    def load(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("miniboone/data.npy"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", load)


def _plotting_fails(earlier: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The density figure runs out of memory after training (as eval.grid_points=100000 did)."""
    from funnelrun.training import plots

    def plot(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("simulated: the density grid does not fit in memory")

    monkeypatch.setattr(plots, "plot_density_2d", plot)


def _idx(magic: int, n: int = 2) -> bytes:
    return struct.pack(">iiii", magic, n, 28, 28) + bytes(n * 28 * 28)


def _cifar(n: int = 2) -> bytes:
    return pickle.dumps({b"data": np.zeros((n, 3072), np.uint8), b"labels": [0] * n}, protocol=2)


def _imagenet(n: int = 2) -> bytes:
    return _npz(data=np.zeros((n, 3072), np.uint8))


def _resume(*overrides: str, sizes: list[str] = TINY) -> list[str]:
    """A command resuming the earlier run with ``overrides``."""
    return ["hydra.run.dir={earlier}", *sizes, *overrides, "ckpt_path=last"]


def _on_data(dataset: str, *overrides: str) -> list[str]:
    """Resume the earlier run with an NSF on ``dataset`` read from ``<tmp>/data``."""
    model_only = [o for o in TINY_NSF if not o.startswith("data.")]
    return _resume("model=nsf", f"data={dataset}", "data.data_dir={tmp}/data", *overrides, sizes=model_only)


def _new_run(*overrides: str) -> list[str]:
    return ["hydra.run.dir={tmp}/new", *TINY, *overrides]


# -- the catalogue ------------------------------------------------------------------------------
#: (id, overrides, fragments): config mistakes made while *resuming* the earlier, finished run
#: (``ckpt_path=last``), where there is most to lose
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
    ("zero spline bins", ["model.num_bins=0"], ["model.num_bins=0"]),
    ("dropout of 1.5", ["model.dropout=1.5"], ["model.dropout=1.5"]),
    ("negative learning rate", ["optim.lr=-1"], ["optim.lr=-1"]),
    ("negative max_steps", ["trainer.max_steps=-5"], ["trainer.max_steps=-5"]),
    ("zero batch size", ["data.batch_size=0"], ["data.batch_size=0"]),
    ("mixed precision for an untested model", ["model=nsf", "model.transform=affine", "trainer.precision=bf16-mixed"],
     ["trainer.precision=bf16-mixed", "model=nsf", "32-true"]),
    ("fp16 on a CPU", ["trainer.precision=16-mixed"], ["trainer.precision=16-mixed", "bf16-mixed"]),
    ("a true reduced precision", ["trainer.precision=bf16-true"], ["trainer.precision=bf16-true", "bf16-mixed"]),
    ("tf32 on a CPU", ["trainer.tf32=true"], ["trainer.tf32=true", "CUDA"]),
    ("compile neither a bool nor auto", ["compile=sometimes"], ["compile=sometimes", "auto"]),
    ("training split smaller than a batch", ["data.n_train=10", "trainer.max_steps=12"], ["fewer than one batch"]),
    # issue 16
    ("negative seed", ["seed=-1"], ["seed=-1", "between 0 and 4294967295"]),
    ("seed beyond 32 bits", ["seed=1099511627776"], ["seed=1099511627776", "between 0 and 4294967295"]),
    ("negative data seed", ["data.seed=-3"], ["data.seed=-3", "between 0 and"]),
    ("one grid point", ["eval.grid_points=1"], ["eval.grid_points=1", "between 2 and 1000"]),
    ("a hundred thousand grid points", ["eval.grid_points=100000"], ["eval.grid_points=100000", "between 2 and"]),
    ("zero image hidden channels", ["model.image.hidden_channels=0"], ["model.image.hidden_channels=0", "at least 1"]),
    ("negative image tail bound", ["model.image.tail_bound=-1"], ["model.image.tail_bound=-1", "positive"]),
    ("negative image residual blocks", ["model.image.num_res_blocks=-1"], ["model.image.num_res_blocks=-1"]),
    ("infinite tail bound", ["model.tail_bound=inf"], ["model.tail_bound=inf", "finite"]),
    ("NaN dropout", ["model.dropout=nan"], ["model.dropout=nan", "finite"]),
    ("negative temperature", ["eval.temperatures=[0.5,-1.0]"], ["eval.temperatures", "at least 0", "-1.0"]),
    ("NaN temperature", ["eval.temperatures=[nan]"], ["eval.temperatures", "nan"]),
]
_NSF_MISTAKES = [
    ("nsf asked to reduce dimension", ["model=nsf", "model.latent_dim=1"], ["preserves dimension", "f_nsf"]),
]

#: (id, data option, files under <tmp>/data, fragments): damaged data files, while resuming
_DATA_FAULTS: list[tuple[str, str, Callable[[], dict[str, bytes]], list[str]]] = [
    ("missing data directory", "power", dict, ["power/data.npy", "zenodo.org/record/1161203", "data.data_dir"]),
    ("garbage npy", "power", lambda: {"power/data.npy": b"\x00garbage" * 20}, ["power/data.npy"]),
    ("truncated npy", "miniboone", lambda: {"miniboone/data.npy": _npy(_miniboone())[:-999]}, ["miniboone/data.npy"]),
    ("NaN rows", "miniboone",
     lambda: {"miniboone/data.npy": _npy(_with(_miniboone(), lambda x: x.__setitem__([5, 390], np.nan)))}, ["NaN"]),
    ("zero rows", "miniboone", lambda: {"miniboone/data.npy": _npy(np.zeros((0, 43)))}, ["MINIBOONE", "0 rows"]),
    ("corrupt pickle", "gas", lambda: {"gas/ethylene_CO.pickle": b"\x80\x04garbage"}, ["ethylene_CO.pickle"]),
    ("truncated csv", "hepmass", lambda: {"hepmass/1000_train.csv": b"# label,f0,f1\n1,0.5,"}, ["1000_"]),
    ("corrupt hdf5", "bsds300", lambda: {"BSDS300/BSDS300.hdf5": b"\x89HDF\r\n\x1a\n" + b"\x00" * 50},
     ["BSDS300.hdf5"]),
    # issue 16
    ("MINIBOONE of 10 columns", "miniboone", lambda: {"miniboone/data.npy": _npy(_miniboone(columns=10))},
     ["miniboone/data.npy", "(rows, 43)", "(400, 10)"]),
    ("complex MINIBOONE", "miniboone", lambda: {"miniboone/data.npy": _npy(_miniboone(dtype=np.complex128))},
     ["miniboone/data.npy", "real numbers", "complex128"]),
    ("constant MINIBOONE column", "miniboone",
     lambda: {"miniboone/data.npy": _npy(_with(_miniboone(), lambda x: x.__setitem__((slice(None), 3), 7.0)))},
     ["column(s) [3]", "std 0"]),
    ("BSDS300 splits of different widths", "bsds300",
     lambda: {"BSDS300/BSDS300.hdf5": _hdf5(train=np.zeros((50, 63)), validation=np.zeros((10, 62)),
                                            test=np.zeros((10, 63)))},
     ["BSDS300.hdf5", "validation 62", "63"]),
]

#: (id, data option, files under <tmp>/data, fragments): damaged image files, while resuming
_IMAGE_FAULTS: list[tuple[str, str, Callable[[], dict[str, bytes]], list[str]]] = [
    ("corrupt IDX", "mnist",
     lambda: {"MNIST/raw/train-images-idx3-ubyte": _idx(2049),
              "MNIST/raw/t10k-images-idx3-ubyte.gz": gzip.compress(_idx(2051))},
     ["MNIST/raw/train-images-idx3-ubyte", "magic number 2049"]),
    ("corrupt CIFAR pickle", "cifar10_8bit",
     lambda: {**{f"cifar-10-batches-py/data_batch_{k}": _cifar() for k in range(1, 6)},
              "cifar-10-batches-py/data_batch_2": b"\x80\x02garbage", "cifar-10-batches-py/test_batch": _cifar()},
     ["cifar-10-batches-py/data_batch_2", "not a CIFAR-10 pickle batch"]),
    ("corrupt npz", "imagenet32_5bit",
     lambda: {**{f"imagenet32/train_data_batch_{k}.npz": _imagenet() for k in range(1, 11)},
              "imagenet32/train_data_batch_4.npz": _imagenet()[:100], "imagenet32/val_data.npz": _imagenet()},
     ["imagenet32/train_data_batch_4.npz", "not a readable npz"]),
    ("missing image data directory", "cifar10_5bit", dict,
     ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch", "cs.toronto.edu", "data.download=true"]),
    # issue 16
    ("non-UTF-8 CelebA partition file", "celeba64", lambda: _celeba(b"000001.jpg 0\n\xff\xfe\x00 1\n"),
     ["celeba/list_eval_partition.txt", "not UTF-8"]),
]

#: (id, image-model overrides on digits (1x8x8), fragments of the error)
IMAGE_MODEL_MISTAKES = [
    ("conv-funnel latent no tiling reaches", ["model=f_nsf", "model.latent_dim=5", "model.dim_reduction=null"],
     ["latent_dim=5", "16", "4"]),
    ("max-pool funnel latent out of reach", ["model=f_nsf", "model.image.funnel=maxpool",
                                             "model.latent_dim=1", "model.dim_reduction=null"], ["latent"]),
    ("ldmask model on vector data", ["model=realnvp_ldmask", "data=four_circles"], ["image"]),
]

_CKPT = "{earlier}/checkpoints/last.ckpt"

CASES: list[Case] = [
    *(Case(name, _resume(*o), f) for name, o, f in CONFIG_MISTAKES),
    *(Case(name, _resume(*o, sizes=TINY_NSF), f) for name, o, f in _NSF_MISTAKES),
    *(Case(name, _on_data(dataset), f, setup=data_files(files)) for name, dataset, files, f in _DATA_FAULTS),
    *(Case(name, _on_data(dataset), f, setup=data_files(files)) for name, dataset, files, f in _IMAGE_FAULTS),
    *(Case(name, ["hydra.run.dir={earlier}", *([] if any(o.startswith("data=") for o in o_) else ["data=digits"]),
                  *o_, "model.image.hidden_channels=4", "ckpt_path=last"], f)
      for name, o_, f in IMAGE_MODEL_MISTAKES),
    Case("CelebA image over Pillow's pixel limit", _on_data("celeba64"),
         ["celeba/img_align_celeba/00000", "DecompressionBombError"], setup=_decompression_bomb),
    Case("data file without read permission", _on_data("miniboone"),
         ["{tmp}/data/miniboone/data.npy", "permission denied"], setup=_unreadable_miniboone),
    # runs and checkpoints
    Case("a new run in an earlier run's directory", ["hydra.run.dir={earlier}", *TINY],
         ["already holds a run", "in a new directory", "trainer.max_steps="]),
    Case("checkpoint of another model", ["hydra.run.dir={tmp}/new", *TINY_NSF, "model=nsf", f"ckpt_path={_CKPT}"],
         ["another model", "model=/data="]),
    Case("garbage checkpoint", _resume(), ["could not read checkpoint", _CKPT],
         setup=checkpoint_bytes(lambda data: b"not a checkpoint" * 10)),
    Case("truncated checkpoint", _resume(), ["could not read checkpoint", _CKPT],
         setup=checkpoint_bytes(lambda data: data[: len(data) // 2])),
    Case("empty checkpoint", _resume(), ["could not read checkpoint", _CKPT], setup=checkpoint_bytes(lambda data: b"")),
    Case("checkpoint holding a tensor", _resume(), [_CKPT, "holds a Tensor, not a checkpoint"],
         setup=checkpoint_holding(lambda c: torch.zeros(3))),
    Case("checkpoint holding a list", _resume(), [_CKPT, "holds a list"], setup=checkpoint_holding(lambda c: [1, 2])),
    Case("checkpoint of a fingerprint only", _resume(), [_CKPT, "not a Lightning checkpoint", "'state_dict'"],
         setup=checkpoint_holding(lambda c: {"funnelrun": c["funnelrun"]})),
    Case("checkpoint weights of wrong shapes", _resume(), [_CKPT, "do not fit this model", "wrong shape"],
         setup=checkpoint_holding(_wrong_shape)),
    Case("sampling a checkpoint of wrong shapes", [f"ckpt_path={_CKPT}"], [_CKPT, "do not fit"],
         tool="funnelrun-sample", setup=checkpoint_holding(_wrong_shape)),
    Case("sampling a checkpoint holding a list", [f"ckpt_path={_CKPT}"], [_CKPT, "holds a list"],
         tool="funnelrun-sample", setup=checkpoint_holding(lambda c: [1, 2])),
    Case("missing checkpoint file", ["hydra.run.dir={tmp}/new", *TINY, "ckpt_path={tmp}/nope.ckpt"],
         ["no checkpoint at", "nope.ckpt"]),
    Case("resume of a directory without a run", ["hydra.run.dir={tmp}/empty", *TINY, "ckpt_path=last"],
         ["no checkpoint", "hydra.run.dir"]),
    # file systems
    Case("read-only output directory", _new_run(), ["{tmp}", "read-only file system"],
         setup=read_only(lambda earlier, tmp: tmp)),
    Case("extending a run on a read-only file system", _resume("trainer.max_steps=9"),
         ["{earlier}", "read-only file system"], setup=read_only(lambda earlier, tmp: earlier)),
    Case("full disk while writing outputs", ["hydra.run.dir={tmp}/full", *TINY],
         ["No space left on device", "hydra.run.dir"], setup=full_disk),
    Case("hydra.run.dir is a file", ["hydra.run.dir={tmp}/afile", *TINY], ["{tmp}/afile", "not a directory"],
         setup=a_file_at("afile")),
    Case("hydra.run.dir below a file", ["hydra.run.dir={tmp}/afile/run", *TINY], ["{tmp}/afile", "not a directory"],
         setup=a_file_at("afile")),
    Case("sampling onto a read-only file system", ["ckpt_path={earlier}"], ["{earlier}/samples", "Read-only file system", "sample.out_dir"],
         tool="funnelrun-sample", setup=read_only(lambda earlier, tmp: earlier)),
    Case("evaluating onto a read-only file system", ["ckpt_path={earlier}", "ood_data=two_moons"],
         ["{earlier}/eval", "Read-only file system"], tool="funnelrun-eval",
         setup=read_only(lambda earlier, tmp: earlier)),
    Case("a report onto a read-only file system", ["{earlier}"], ["{earlier}/report.csv", "Read-only file system",
                                                                  "--csv"],
         tool="funnelrun-report", setup=read_only(lambda earlier, tmp: earlier)),
    # the follow-up tools
    Case("negative number of samples", ["ckpt_path={earlier}", "sample.num_samples=-5"],
         ["sample.num_samples=-5", "at least 1"], tool="funnelrun-sample"),
    Case("zero samples", ["ckpt_path={earlier}", "sample.num_samples=0"], ["sample.num_samples=0", "at least 1"],
         tool="funnelrun-sample"),
    Case("negative sampling temperature", ["ckpt_path={earlier}", "sample.temperatures=[-1.0]"],
         ["sample.temperatures", "at least 0"], tool="funnelrun-sample"),
    Case("a report over a truncated metrics.json", ["{earlier}"], ["{earlier}/metrics.json", "unreadable"],
         tool="funnelrun-report", expect="notice", adds_files=True,
         setup=lambda earlier, tmp, mp: (earlier / "metrics.json").write_bytes(
             (earlier / "metrics.json").read_bytes()[:40])),
    Case("a certificate without ckpt_path", ["model.hidden_features=8", "model.num_blocks=1", "model.num_steps=2",
                                             "model.num_bins=4", "model.conditional_hidden_features=8",
                                             "data.n_test=64", "data.eval_batch_size=64"],
         ["untrained", "freshly initialised", "ckpt_path=<run>"], tool="funnelrun-check", expect="notice"),
    # accepted silently before: now refused, or run with a warning
    Case("out-of-memory model build", _new_run("model.hidden_features=30000000"),
         ["out of memory", "model.hidden_features=30000000"]),
    Case("validation interval beyond max_steps", _new_run("trainer.val_check_interval=100"),
         ["trainer.val_check_interval=100 is beyond trainer.max_steps=6", "no validation will run"],
         expect="warning"),
    Case("a density figure that cannot be drawn", _new_run(), ["density.png could not be drawn", "MemoryError",
                                                               "test log-likelihood", "metrics.json"],
         expect="warning", setup=_plotting_fails),
    Case("diverging learning rate", _new_run("optim.lr=1e6"), ["training diverged", "optim.lr=1000000.0"],
         expect="warning"),
]

assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
