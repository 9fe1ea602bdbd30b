"""The tabular sets of masked autoregressive flows: POWER, GAS, HEPMASS, MINIBOONE, BSDS300.

The files are those of the MAF preprocessed release (Papamakarios, Pavlakou & Murray 2017,
https://zenodo.org/record/1161203, ``data.tar.gz``), laid out under one ``data_dir`` as unpacked::

    power/data.npy  gas/ethylene_CO.pickle  hepmass/1000_train.csv  hepmass/1000_test.csv
    miniboone/data.npy  BSDS300/BSDS300.hdf5

Each ``load_<name>(data_dir)`` applies exactly the preprocessing and splits of the MAF code
(github.com/gpapamak/maf, ``datasets/<name>.py``; the same in NSF's ``data/<name>.py``) and returns
``(train, val, test)`` float32 tensors of 6, 8, 21, 43 and 63 columns on the real files (funnels
paper, Table 5). "The last 10%" below means the last ``int(0.1 * n)`` rows, in file order.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import Tensor

from funnelrun.data.base import FunnelDataModule, TensorRows
from funnelrun.errors import FunnelrunError, unreadable

if TYPE_CHECKING:
    import pandas as pd

Splits = tuple[Tensor, Tensor, Tensor]
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]

MAF_RELEASE = "https://zenodo.org/record/1161203 (data.tar.gz)"
#: the files each set is read from, relative to ``data_dir``
FILES: dict[str, tuple[str, ...]] = {
    "power": ("power/data.npy",),
    "gas": ("gas/ethylene_CO.pickle",),
    "hepmass": ("hepmass/1000_train.csv", "hepmass/1000_test.csv"),
    "miniboone": ("miniboone/data.npy",),
    "bsds300": ("BSDS300/BSDS300.hdf5",),
}
SPLIT_NAMES = ("train", "val", "test")


# -- files and checks ---------------------------------------------------------------------------
def _paths(name: str, data_dir: str | Path) -> list[Path]:
    """The files of set ``name`` under ``data_dir``; a missing directory or file says what to get."""
    root = Path(data_dir).expanduser()
    expected = ", ".join(FILES[name])
    missing = [rel for rel in FILES[name] if not (root / rel).is_file()]
    if not missing:
        return [root / rel for rel in FILES[name]]
    problem = (
        f"data directory {root.resolve()} does not exist" if not root.is_dir()
        else f"{root.resolve() / missing[0]} not found"
    )
    raise FunnelrunError(
        f"{name.upper()} data: {problem}. Expected {expected} under data.data_dir, as unpacked from the "
        f"MAF preprocessed release, {MAF_RELEASE}. Point at them with data.data_dir=<dir> "
        f"(or the FUNNELRUN_DATA_DIR environment variable)"
    )


def _corrupt(path: Path, exc: BaseException) -> FunnelrunError:
    return unreadable(path, exc) or FunnelrunError(
        f"cannot read {path}: {type(exc).__name__}: {exc} (truncated or corrupt file?)"
    )


def _check_real(where: str, x: np.ndarray) -> None:
    """Refuse anything but an integer or real floating-point array (complex, strings, objects)."""
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise FunnelrunError(f"{where}: expected real numbers, got a {x.dtype} array (is it the MAF release's file?)")


def _check_not_constant(where: str, std: np.ndarray) -> None:
    """Standardising divides by each column's std: a constant column (std 0) cannot be standardised."""
    constant = np.flatnonzero(np.asarray(std) == 0)
    if constant.size:
        raise FunnelrunError(
            f"{where}: column(s) {constant.tolist()} (0-based) hold one value in every row (std 0), so they "
            "cannot be standardised; the MAF release's file has no constant column: is it the right file?"
        )


def _check_rows(where: str, x: np.ndarray) -> None:
    """Refuse an empty array or one with NaN/inf rows, saying where and how many."""
    if x.shape[0] == 0:
        raise FunnelrunError(f"{where} has 0 rows (too few rows in the file for the MAF splits?)")
    bad = int((~np.isfinite(x)).any(axis=1).sum())
    if bad:
        raise FunnelrunError(f"{where}: {bad} of {x.shape[0]} rows contain NaN or inf")


def _load_npy(path: Path, columns: int | None = None) -> np.ndarray:
    """A 2-D numeric array from ``path`` (``columns`` of them, when given)."""
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _corrupt(path, exc) from exc
    _check_real(str(path), x)
    if x.ndim != 2 or columns not in (None, x.shape[1]):
        want = f"(rows, {columns})" if columns else "(rows, columns)"
        raise FunnelrunError(f"{path}: expected a numeric array of shape {want}, got {x.dtype} {x.shape}")
    return x


def _last_tenth(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(all but the last 10%, the last 10%) of the rows: MAF's ``x[:-n], x[-n:]`` with n = int(0.1 len).

    For n = 0 those slices would give an empty first part; here the tail is empty, and refused later.
    """
    cut = x.shape[0] - int(0.1 * x.shape[0])
    return x[:cut], x[cut:]


def _maf_splits(x: np.ndarray) -> Arrays:
    """Test = the last 10% of the rows; validation = the last 10% of the rest; train = the remainder."""
    rest, test = _last_tenth(x)
    train, val = _last_tenth(rest)
    return train, val, test


def _standardise_by_train_val(name: str, splits: Arrays) -> Arrays:
    """Check the raw splits, then subtract the mean and divide by the (ddof 0) std of train + val."""
    for split, x in zip(SPLIT_NAMES, splits):
        _check_rows(f"{name} {split} split", x)
    fit = np.vstack(splits[:2])
    mu, s = fit.mean(axis=0), fit.std(axis=0)
    _check_not_constant(f"{name} train + validation splits", s)
    train, val, test = ((x - mu) / s for x in splits)
    return train, val, test


#: columns of each set after the MAF preprocessing (funnels paper, Table 5)
COLUMNS = {"POWER": 6, "GAS": 8, "HEPMASS": 21, "MINIBOONE": 43, "BSDS300": 63}


def _tensors(name: str, splits: Arrays) -> Splits:
    """float32 tensors, each split checked again: its width (:data:`COLUMNS`) and values."""
    for split, x in zip(SPLIT_NAMES, splits):
        if x.ndim != 2 or x.shape[1] != COLUMNS[name]:
            raise FunnelrunError(
                f"{name} {split} split: {x.shape[1] if x.ndim == 2 else x.shape} columns after the MAF "
                f"preprocessing, expected {COLUMNS[name]} (funnels paper, Table 5); is the file the MAF "
                f"release's ({MAF_RELEASE})?"
            )
        _check_real(f"{name} {split} split", x)
        _check_rows(f"{name} {split} split (after preprocessing)", x)
    train, val, test = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in splits)
    return train, val, test


# -- the five sets ------------------------------------------------------------------------------
def load_power(data_dir: str | Path) -> Splits:
    """POWER (UCI household electric power consumption), 6 columns; MAF ``datasets/power.py``.

    ``data.npy`` has 8 columns (global active power, global reactive power, voltage, global intensity,
    sub-metering 1-3, time of day in minutes). With ``RandomState(42)``: shuffle the rows; delete
    global intensity and global reactive power; add uniform noise per column, drawn in this order:
    voltage U[0, 0.01), active power U[0, 0.001), the three sub-meterings U[0, 1), time none. Split
    (test = last 10%, validation = last 10% of the rest) and standardise by train + val mean/std.
    """
    (path,) = _paths("power", data_dir)
    data = _load_npy(path, columns=8)
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    data = np.delete(data, [1, 3], axis=1)  # active power, voltage, sub-metering 1-3, time
    n = data.shape[0]
    voltage_noise = 0.01 * rng.rand(n, 1)
    active_noise = 0.001 * rng.rand(n, 1)
    metering_noise = rng.rand(n, 3)
    data = data + np.hstack((active_noise, voltage_noise, metering_noise, np.zeros((n, 1))))
    return _tensors("POWER", _standardise_by_train_val("POWER", _maf_splits(data)))


def _correlated_columns_removed(frame: pd.DataFrame) -> pd.DataFrame:
    """MAF's loop: while a column has correlation > 0.98 with another, drop the first such column.

    Drops by name (as MAF's ``DataFrame.drop`` does) and recomputes the correlations after each drop.
    """
    while True:
        counts = (frame.corr() > 0.98).to_numpy().sum(axis=1)  # each column counts itself once
        if not (counts > 1).any():
            return frame
        frame = frame.drop(columns=frame.columns[np.flatnonzero(counts > 1)[0]])


def load_gas(data_dir: str | Path) -> Splits:
    """GAS (UCI gas sensor array under dynamic gas mixtures, ethylene and CO), 8 columns; MAF ``datasets/gas.py``.

    ``ethylene_CO.pickle`` is a pandas DataFrame: drop ``Meth``, ``Eth`` and ``Time``, remove
    correlated sensors (:func:`_correlated_columns_removed`), standardise every column by the mean and
    (ddof 1) std of *all* rows, then split without shuffling (test = last 10%, validation = last 10%
    of the rest).
    """
    import pandas as pd

    (path,) = _paths("gas", data_dir)
    try:
        frame = pd.read_pickle(path)
    except Exception as exc:  # unpickling fails in many ways: every one means "cannot read this file"
        raise FunnelrunError(
            f"cannot unpickle {path}: {type(exc).__name__}: {exc}. If the file is intact, it may predate "
            f"what this pandas ({pd.__version__}) reads (gpapamak/maf#13): re-save it once where pandas<2 is "
            f"installed: python -c \"import pandas as pd; p='{path}'; pd.read_pickle(p).to_pickle(p)\""
        ) from exc
    if not isinstance(frame, pd.DataFrame) or not {"Meth", "Eth", "Time"} <= set(frame.columns):
        raise FunnelrunError(f"{path}: expected a DataFrame with columns Time, Meth, Eth and the sensors")
    frame = frame.drop(columns=["Meth", "Eth", "Time"])
    try:
        frame = frame.astype(np.float64)
    except (ValueError, TypeError) as exc:
        raise FunnelrunError(f"{path}: non-numeric sensor values ({exc})") from exc
    _check_rows(str(path), frame.to_numpy())
    frame = _correlated_columns_removed(frame)
    _check_not_constant(str(path), frame.std().to_numpy())
    frame = (frame - frame.mean()) / frame.std()
    return _tensors("GAS", _maf_splits(frame.to_numpy()))


def _read_hepmass_csv(path: Path, drop_last: bool) -> tuple[list[str], np.ndarray]:
    """Feature names and the label-1 rows (label column dropped) of one HEPMASS file.

    MAF drops the last column of ``1000_test.csv`` ("because the data set is messed up!").
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path, index_col=False)
        if drop_last:
            frame = frame.iloc[:, :-1]
        values = frame.to_numpy(dtype=np.float64)
    except ValueError as exc:  # pandas' parser, empty-file and conversion errors are all ValueErrors
        raise _corrupt(path, exc) from exc
    if values.shape[1] < 2:
        raise FunnelrunError(f"{path}: expected a label column and features, got columns {list(frame.columns)}")
    bad = int((~np.isfinite(values)).any(axis=1).sum())
    if bad:
        raise FunnelrunError(f"{path}: {bad} row(s) with missing or non-finite values (truncated or corrupt file?)")
    return [str(c) for c in frame.columns[1:]], values[values[:, 0] == 1, 1:]


def repeated_minimum_columns(x: np.ndarray, limit: int = 5) -> np.ndarray:
    """Indices of the columns whose *smallest* value occurs more than ``limit`` times.

    MAF's "features that have too many re-occurring real values": it counts each value with a
    ``Counter``, sorts by value and tests the first count, that of the minimum.
    """
    return np.flatnonzero((x == x.min(axis=0)).sum(axis=0) > limit)


def load_hepmass(data_dir: str | Path) -> Splits:
    """HEPMASS ("1000" set, signal only), 21 columns; MAF ``datasets/hepmass.py``.

    Read both CSVs with pandas, keep the rows with label 1 and drop the label column (and the
    test file's last column); standardise both by the mean and (ddof 1) std of the training file;
    drop the columns whose minimum occurs more than 5 times in the training file
    (:func:`repeated_minimum_columns`); validation = the last 10% of the training file.
    """
    train_path, test_path = _paths("hepmass", data_dir)
    train_names, train = _read_hepmass_csv(train_path, drop_last=False)
    test_names, test = _read_hepmass_csv(test_path, drop_last=True)
    if train_names != test_names:  # MAF aligns the two files by column name
        raise FunnelrunError(
            f"{test_path}: columns {test_names} (after dropping its last) differ from {train_path}'s {train_names}"
        )
    _check_rows(f"HEPMASS signal rows of {train_path}", train)
    mu, s = train.mean(axis=0), train.std(axis=0, ddof=1)
    train, test = (train - mu) / s, (test - mu) / s
    keep = np.setdiff1d(np.arange(train.shape[1]), repeated_minimum_columns(train))
    train, val = _last_tenth(train[:, keep])
    return _tensors("HEPMASS", (train, val, test[:, keep]))


def load_miniboone(data_dir: str | Path) -> Splits:
    """MINIBOONE (UCI MiniBooNE particle identification), 43 columns; MAF ``datasets/miniboone.py``.

    ``data.npy`` is already cleaned: when MAF made it, outlier rows (first column < -100) and the
    columns whose minimum occurs more than 5 times were removed (the commented-out part of MAF's
    ``load_data``), so loading only splits without shuffling (test = last 10%, validation = last 10%
    of the rest) and standardises by the train + val mean/std.
    """
    (path,) = _paths("miniboone", data_dir)
    data = _load_npy(path, columns=COLUMNS["MINIBOONE"])
    return _tensors("MINIBOONE", _standardise_by_train_val("MINIBOONE", _maf_splits(data)))


def load_bsds300(data_dir: str | Path) -> Splits:
    """BSDS300 image patches, 63 columns; MAF ``datasets/bsds300.py``.

    ``BSDS300.hdf5`` holds the three splits, already preprocessed, as the datasets ``train``,
    ``validation`` and ``test``; they are read as they are.
    """
    import h5py

    (path,) = _paths("bsds300", data_dir)
    splits = []
    try:
        with h5py.File(path, "r") as f:
            for key in ("train", "validation", "test"):
                if not isinstance(f.get(key), h5py.Dataset) or f[key].ndim != 2:
                    raise FunnelrunError(f"{path}: expected a 2-D dataset '{key}' (train, validation, test)")
                splits.append(f[key][:])
    except OSError as exc:  # h5py: not an HDF5 file, truncated, unreadable chunk
        raise _corrupt(path, exc) from exc
    widths = {key: x.shape[1] for key, x in zip(("train", "validation", "test"), splits)}
    if len(set(widths.values())) > 1 or COLUMNS["BSDS300"] not in widths.values():
        raise FunnelrunError(
            f"{path}: the datasets have {', '.join(f'{k} {w}' for k, w in widths.items())} columns; the MAF "
            f"release's have {COLUMNS['BSDS300']} each (8x8 patches less one pixel)"
        )
    train, val, test = splits
    return _tensors("BSDS300", (train, val, test))


LOADERS: dict[str, Callable[[str | Path], Splits]] = {
    "power": load_power,
    "gas": load_gas,
    "hepmass": load_hepmass,
    "miniboone": load_miniboone,
    "bsds300": load_bsds300,
}


class TabularDataModule(FunnelDataModule):
    """One of the MAF tabular sets (:data:`LOADERS`), read from ``data_dir`` in ``__init__``.

    Batches are ``(batch, D)`` float32 tensors; the data is continuous (``bits`` is None, no BPD).
    ``seed`` sets only the training batch order: the splits and POWER's noise are fixed by the
    MAF preprocessing, so every run sees the same test split.
    """

    def __init__(
        self,
        name: str,
        data_dir: str,
        batch_size: int = 512,
        eval_batch_size: int = 4096,
        seed: int = 1234,
        num_workers: int = 0,
    ):
        if name not in LOADERS:
            raise FunnelrunError(f"unknown tabular dataset {name!r}; valid names: {sorted(LOADERS)}")
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, num_workers=num_workers)
        self.name = name
        self.train_data, self.val_data, self.test_data = LOADERS[name](data_dir)
        self.data_shape = (self.train_data.shape[1],)
        self.train, self.val, self.test = map(TensorRows, (self.train_data, self.val_data, self.test_data))
