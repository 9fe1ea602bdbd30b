"""W&B mode resolution never blocks on a server; offline logging works with no network."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from funnelrun.training.wandb_mode import resolve_wandb_mode

_WANDB_ENV = ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "NETRC")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No W&B variables, an empty HOME (no ~/.netrc)."""
    for var in _WANDB_ENV:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return monkeypatch


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_not_set_up_is_offline(clean_env: pytest.MonkeyPatch) -> None:
    mode, reason = resolve_wandb_mode()
    assert mode == "offline"
    assert "wandb sync" in reason and "wandb login" in reason


@pytest.mark.parametrize("requested", ["offline", "disabled"])
def test_requested_mode_wins(clean_env: pytest.MonkeyPatch, requested: str) -> None:
    clean_env.setenv("WANDB_API_KEY", "x" * 40)
    clean_env.setenv("WANDB_MODE", "online")
    assert resolve_wandb_mode(requested)[0] == requested


@pytest.mark.parametrize("env, expected", [("online", "online"), ("disabled", "disabled"), ("dryrun", "offline")])
def test_wandb_mode_env_respected(clean_env: pytest.MonkeyPatch, env: str, expected: str) -> None:
    clean_env.setenv("WANDB_MODE", env)
    mode, reason = resolve_wandb_mode()
    assert mode == expected and "WANDB_MODE" in reason


def test_unknown_request_rejected(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        resolve_wandb_mode("sometimes")


def test_key_but_unreachable_is_offline_quickly(clean_env: pytest.MonkeyPatch) -> None:
    port = _free_port()
    clean_env.setenv("WANDB_API_KEY", "x" * 40)
    clean_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    mode, reason = resolve_wandb_mode(timeout_s=1.0)
    assert time.monotonic() - start < 1.5
    assert mode == "offline"
    assert f"127.0.0.1:{port}" in reason and "wandb sync" in reason


def _listening_server() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


def test_key_and_reachable_is_online(clean_env: pytest.MonkeyPatch) -> None:
    with _listening_server() as server:
        clean_env.setenv("WANDB_API_KEY", "x" * 40)
        clean_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert resolve_wandb_mode(timeout_s=1.0)[0] == "online"


def test_netrc_entry_counts_as_set_up(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _listening_server() as server:
        clean_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        netrc_file = tmp_path / "netrc"
        netrc_file.write_text("machine 127.0.0.1\n  login user\n  password " + "y" * 40 + "\n")
        netrc_file.chmod(0o600)
        clean_env.setenv("NETRC", str(netrc_file))
        assert resolve_wandb_mode(timeout_s=1.0)[0] == "online"
        netrc_file.write_text("machine example.invalid\n  login user\n  password pw\n")
        assert resolve_wandb_mode(timeout_s=1.0)[0] == "offline"


def test_home_netrc_is_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _listening_server() as server:
        clean_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        netrc_file = tmp_path / "home" / ".netrc"
        netrc_file.write_text("machine 127.0.0.1\n  login user\n  password " + "y" * 40 + "\n")
        netrc_file.chmod(0o600)
        assert resolve_wandb_mode(timeout_s=1.0)[0] == "online"


def test_offline_wandb_logger_writes_run(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import numpy as np
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    clean_env.setenv("WANDB_SILENT", "true")
    clean_env.setenv("WANDB_DIR", str(tmp_path))
    clean_env.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    clean_env.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    clean_env.setenv("WANDB_DATA_DIR", str(tmp_path / "data"))
    mode, _ = resolve_wandb_mode()
    assert mode == "offline"
    logger = WandbLogger(mode=mode, save_dir=str(tmp_path), project="funnelrun-test", anonymous=None)
    try:
        logger.log_metrics({"val/nll": 1.25}, step=0)
        image = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype("uint8")
        logger.log_image(key="density", images=[image], step=0)
    finally:
        wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))  # the run's transaction log was written
