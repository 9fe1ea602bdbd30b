"""MAF tabular sets on small files written in the release's formats: dims, splits, preprocessing, errors."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from funnelrun.data.uci import (
    FILES,
    LOADERS,
    TabularDataModule,
    load_bsds300,
    load_gas,
    load_hepmass,
    load_miniboone,
    load_power,
    repeated_minimum_columns,
)
from funnelrun.errors import FunnelrunError

HEPMASS_FEATURES = [f"f{i}" for i in range(27)]
#: HEPMASS columns whose minimum repeats > 5 times in the signal rows (n_jets and b-tag like, a clipped pt)
HEPMASS_REPEATED_MIN = [5, 8, 12, 16, 17, 20]
#: GAS sensors in groups correlated > 0.98 within a group; MAF's loop keeps the last of each group
GAS_GROUPS = [3, 2, 2, 2, 2, 2, 2, 1]


def _file(root: Path, rel: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _power_raw(n: int = 300) -> np.ndarray:
    """Columns as in power/data.npy: active/reactive power, voltage, intensity, 3 sub-meterings, time."""
    rng = np.random.default_rng(0)
    return np.column_stack([
        rng.uniform(0.1, 5, n).round(3), rng.uniform(0, 0.5, n).round(3), rng.normal(240, 3, n).round(2),
        rng.uniform(0, 20, n).round(1), rng.integers(0, 40, (n, 3)).astype(float), rng.uniform(0, 1440, n),
    ])


def _write_power(root: Path, data: np.ndarray) -> None:
    np.save(_file(root, "power/data.npy"), data)


def _maf_power(raw: np.ndarray) -> list[np.ndarray]:
    """A line-by-line transcription of MAF's power.py, the oracle for :func:`load_power`."""
    rng = np.random.RandomState(42)
    data = raw.copy()
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(np.delete(data, 3, axis=1), 1, axis=1)
    voltage, gap, sm = 0.01 * rng.rand(n, 1), 0.001 * rng.rand(n, 1), rng.rand(n, 3)
    data = data + np.hstack((gap, voltage, sm, np.zeros((n, 1))))
    n_test = int(0.1 * n)
    test, data = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * data.shape[0])
    val, train = data[-n_val:], data[:-n_val]
    both = np.vstack((train, val))
    return [(x - both.mean(0)) / both.std(0) for x in (train, val, test)]


def _gas_frame(n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """A DataFrame laid out as ethylene_CO.pickle (Time, Meth, Eth, 16 sensors) and the 8 sensors MAF keeps."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((n, len(GAS_GROUPS)))
    sensors, kept = [], []
    for g, size in enumerate(GAS_GROUPS):
        group = [(k + 1) * base[:, g] + k + 0.01 * rng.standard_normal(n) for k in range(size)]
        sensors += group
        kept.append(group[-1])
    # the singleton is correlated ~0.95 (< 0.98) with group 0: kept
    sensors[-1] = kept[-1] = base[:, 0] + 0.33 * rng.standard_normal(n)
    columns = {"Time": np.arange(n) * 0.01, "Meth": rng.choice([0.0, 50, 100], n), "Eth": rng.choice([0.0, 10], n)}
    columns |= {f"Sensor{i + 1}": s for i, s in enumerate(sensors)}
    return pd.DataFrame(columns), np.column_stack(kept)


def _hepmass_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 27))
    x[:, 5] = rng.integers(0, 4, n)  # n_jets-like
    for j in (8, 12, 16, 20):  # b-tag-like
        x[:, j] = rng.integers(0, 2, n)
    x[:, 17] = np.maximum(x[:, 17], -0.5)  # a clipped pt: its minimum repeats
    x[:, 1] = np.minimum(x[:, 1], 0.5)  # the *maximum* repeats: MAF keeps it
    x[:5, 2] = x[:, 2].min() - 1  # the minimum repeats exactly 5 times: kept
    frame = pd.DataFrame(x, columns=HEPMASS_FEATURES)
    frame.insert(0, "# label", np.arange(n) % 3 != 0)  # 2 of 3 rows are signal
    frame["# label"] = frame["# label"].astype(float)
    return frame


def _write_hepmass(root: Path, n_train: int = 360, n_test: int = 150) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = _hepmass_frame(n_train, 2), _hepmass_frame(n_test, 3)
    test["mass"] = 1000.0  # the column MAF drops from the test file
    train.to_csv(_file(root, "hepmass/1000_train.csv"), index=False)
    test.to_csv(_file(root, "hepmass/1000_test.csv"), index=False)
    return train, test


def _write_miniboone(root: Path, data: np.ndarray) -> None:
    np.save(_file(root, "miniboone/data.npy"), data)


def _miniboone_raw(n: int = 300) -> np.ndarray:
    data = np.random.default_rng(4).standard_normal((n, 43)) * np.arange(1, 44) + np.arange(43)
    data[: n // 2, 0] = data[:, 0].min()  # repeated minimum: already-clean file, so MAF keeps it
    return data


def _write_bsds300(root: Path, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    arrays = {key: rng.standard_normal((n, 63)).astype(np.float32) for key, n in sizes.items()}
    with h5py.File(_file(root, "BSDS300/BSDS300.hdf5"), "w") as f:
        for key, x in arrays.items():
            f.create_dataset(key, data=x)
    return arrays


# -- preprocessing --------------------------------------------------------------------------------
def test_power_matches_maf_and_is_deterministic(tmp_path: Path) -> None:
    raw = _power_raw(300)
    _write_power(tmp_path, raw)
    splits = load_power(tmp_path)
    assert [tuple(x.shape) for x in splits] == [(243, 6), (27, 6), (30, 6)]  # 30 = int(.1*300), 27 = int(.1*270)
    assert all(x.dtype == torch.float32 for x in splits)
    for ours, ref in zip(splits, _maf_power(raw)):
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-5)
    both = torch.cat(splits[:2]).double()
    assert both.mean(0).abs().max() < 1e-5 and (both.std(0, correction=0) - 1).abs().max() < 1e-5
    assert all(torch.equal(a, b) for a, b in zip(splits, load_power(tmp_path)))


def test_gas_drops_labels_and_correlated_sensors(tmp_path: Path) -> None:
    frame, kept = _gas_frame(400)
    frame.to_pickle(_file(tmp_path, "gas/ethylene_CO.pickle"))
    train, val, test = load_gas(tmp_path)
    assert (train.shape, val.shape, test.shape) == ((324, 8), (36, 8), (40, 8))
    expected = (kept - kept.mean(0)) / kept.std(0, ddof=1)  # over all rows, before the split
    np.testing.assert_allclose(torch.cat([train, val, test]).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_repeated_minimum_rule() -> None:
    x = np.array([[0.0, 1.0, 3.0]] * 6 + [[1.0, 0.0, 2.0]])
    x[:5, 2] = 2.0  # min 2.0 occurs 6 times
    assert repeated_minimum_columns(x).tolist() == [0, 2]  # column 1: the max repeats, the min once
    assert repeated_minimum_columns(x[1:]).tolist() == []  # one row fewer: both minima 5 times, not > 5


def test_hepmass_signal_rows_repeated_features_and_normalisation(tmp_path: Path) -> None:
    train_csv, test_csv = _write_hepmass(tmp_path)
    train, val, test = load_hepmass(tmp_path)
    n_signal = int((train_csv["# label"] == 1).sum())
    n_val = int(0.1 * n_signal)
    assert (train.shape, val.shape) == ((n_signal - n_val, 21), (n_val, 21))
    assert test.shape == (int((test_csv["# label"] == 1).sum()), 21)
    keep = [f for i, f in enumerate(HEPMASS_FEATURES) if i not in HEPMASS_REPEATED_MIN]
    signal = train_csv.loc[train_csv["# label"] == 1, keep].to_numpy()
    expected = (signal - signal.mean(0)) / signal.std(0, ddof=1)
    np.testing.assert_allclose(torch.cat([train, val]).numpy(), expected, rtol=1e-5, atol=1e-5)
    test_signal = test_csv.loc[test_csv["# label"] == 1, keep].to_numpy()
    np.testing.assert_allclose(test.numpy(), (test_signal - signal.mean(0)) / signal.std(0, ddof=1), atol=1e-5)


def test_miniboone_splits_in_file_order_normalised_by_train_val(tmp_path: Path) -> None:
    raw = _miniboone_raw(300)
    _write_miniboone(tmp_path, raw)
    train, val, test = load_miniboone(tmp_path)
    assert (train.shape, val.shape, test.shape) == ((243, 43), (27, 43), (30, 43))
    fit = raw[:270]
    np.testing.assert_allclose(test.numpy(), (raw[270:] - fit.mean(0)) / fit.std(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(val.numpy(), (raw[243:270] - fit.mean(0)) / fit.std(0), rtol=1e-5, atol=1e-5)


def test_bsds300_reads_the_three_datasets(tmp_path: Path) -> None:
    arrays = _write_bsds300(tmp_path, {"train": 200, "validation": 40, "test": 50})
    splits = load_bsds300(tmp_path)
    for ours, key in zip(splits, ("train", "validation", "test")):
        assert ours.shape[1] == 63 and torch.equal(ours, torch.from_numpy(arrays[key]))


def test_data_module(tmp_path: Path) -> None:
    _write_miniboone(tmp_path, _miniboone_raw(300))
    dm = TabularDataModule("miniboone", str(tmp_path), batch_size=64, eval_batch_size=100, seed=0)
    assert dm.data_shape == (43,) and dm.data_dim == 43 and dm.bits is None
    assert (len(dm.train), len(dm.val), len(dm.test)) == (243, 27, 30)
    assert next(iter(dm.train_dataloader())).shape == (64, 43)
    assert torch.equal(torch.cat(list(dm.test_dataloader())), dm.test_data)
    with pytest.raises(FunnelrunError, match="valid names"):
        TabularDataModule("powr", str(tmp_path))


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_missing_directory_says_what_to_get(tmp_path: Path, name: str) -> None:
    with pytest.raises(FunnelrunError, match="does not exist") as err:
        LOADERS[name](tmp_path / "absent")
    message = str(err.value)
    assert all(rel in message for rel in FILES[name])
    assert "zenodo.org/record/1161203" in message and "data.data_dir=" in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    _write_hepmass(tmp_path)
    (tmp_path / "hepmass/1000_test.csv").unlink()
    with pytest.raises(FunnelrunError, match=r"hepmass/1000_test.csv not found.*1161203"):
        load_hepmass(tmp_path)


def test_truncated_npy(tmp_path: Path) -> None:
    _write_power(tmp_path, _power_raw(300))
    path = tmp_path / "power/data.npy"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(FunnelrunError, match=r"power/data.npy.*truncated or corrupt"):
        load_power(tmp_path)


def test_wrong_power_columns(tmp_path: Path) -> None:
    _write_power(tmp_path, _power_raw(300)[:, :7])
    with pytest.raises(FunnelrunError, match=r"shape \(rows, 8\), got float64 \(300, 7\)"):
        load_power(tmp_path)


def test_corrupt_pickle(tmp_path: Path) -> None:
    frame, _ = _gas_frame(50)
    path = _file(tmp_path, "gas/ethylene_CO.pickle")
    frame.to_pickle(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FunnelrunError, match=r"cannot unpickle .*gas/ethylene_CO.pickle.*pandas<2"):
        load_gas(tmp_path)


def test_corrupt_and_incomplete_hdf5(tmp_path: Path) -> None:
    _write_bsds300(tmp_path, {"train": 20, "test": 5})
    with pytest.raises(FunnelrunError, match="2-D dataset 'validation'"):
        load_bsds300(tmp_path)
    (tmp_path / "BSDS300/BSDS300.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(FunnelrunError, match=r"cannot read .*BSDS300/BSDS300.hdf5"):
        load_bsds300(tmp_path)


def test_truncated_csv(tmp_path: Path) -> None:
    _write_hepmass(tmp_path)
    path = tmp_path / "hepmass/1000_train.csv"
    path.write_text(path.read_text()[:-300])
    with pytest.raises(FunnelrunError, match=r"1000_train.csv: 1 row\(s\) with missing"):
        load_hepmass(tmp_path)


def test_nan_rows_name_split_and_count(tmp_path: Path) -> None:
    raw = _miniboone_raw(300)
    raw[-3:, 7] = np.nan
    raw[-1, 8] = np.inf
    _write_miniboone(tmp_path, raw)
    with pytest.raises(FunnelrunError, match="MINIBOONE test split: 3 of 30 rows contain NaN or inf"):
        load_miniboone(tmp_path)


def test_too_few_rows_for_the_splits(tmp_path: Path) -> None:
    _write_miniboone(tmp_path, _miniboone_raw(10))  # 1 test row, then int(0.1 * 9) == 0 validation rows
    with pytest.raises(FunnelrunError, match="MINIBOONE val split has 0 rows"):
        load_miniboone(tmp_path)


# -- command line ---------------------------------------------------------------------------------
def test_cli_trains_nsf_on_power(tmp_path: Path, run_cli) -> None:
    _write_power(tmp_path / "data", _power_raw(600))
    result = run_cli(
        tmp_path / "run", "model=nsf", "data=power", f"data.data_dir={tmp_path / 'data'}",
        "model.num_steps=2", "model.hidden_features=16", "model.num_blocks=1", "model.num_bins=4",
        "data.batch_size=64", "data.eval_batch_size=256", "trainer.max_steps=4", "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
    )
    assert result.code == 0, result.err
    metrics = result.metrics
    assert metrics["data_dim"] == 6 and metrics["steps"] == 4 and metrics["test/bpd"] is None
    assert np.isfinite(metrics["test/nll"])


def test_cli_names_the_missing_file(tmp_path: Path, run_cli) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli(tmp_path / "run", "model=nsf", "data=power", f"data.data_dir={tmp_path / 'empty'}")
    assert result.code != 0
    assert "funnelrun: error: POWER data:" in result.err and "power/data.npy not found" in result.err
