"""Pick the W&B mode so that a run never blocks on a server.

Order of rules: an explicit ``offline``/``disabled`` request; the ``WANDB_MODE`` environment
variable; whether W&B has been set up at all (``WANDB_API_KEY`` or a netrc entry for the W&B
host); and finally a single plain TCP connect to the host, bounded by ``timeout_s``.
"""
from __future__ import annotations

import netrc
import os
import socket
import threading
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

DEFAULT_BASE_URL = "https://api.wandb.ai"
SYNC_HINT = "upload it later with `wandb sync <save_dir>/wandb/offline-run-*`"
_ENV_MODES = {"online": "online", "offline": "offline", "disabled": "disabled", "dryrun": "offline"}


def wandb_host_port(base_url: Optional[str] = None) -> tuple[str, int]:
    """Host and port of the W&B server (``WANDB_BASE_URL``, default https://api.wandb.ai)."""
    url = base_url or os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    parsed = urlparse(url if "://" in url else f"https://{url}")
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    return parsed.hostname or "api.wandb.ai", port


def netrc_path() -> Path:
    """The netrc file W&B reads: ``$NETRC`` or ``~/.netrc``."""
    return Path(os.environ.get("NETRC") or Path(os.path.expanduser("~")) / ".netrc")


def has_netrc_entry(host: str) -> bool:
    """True when the netrc file has credentials for ``host`` (unreadable files count as none)."""
    path = netrc_path()
    if not path.is_file():
        return False
    try:
        auth = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def tcp_reachable(host: str, port: int, timeout_s: float) -> bool:
    """One TCP connect to host:port; False if it fails or takes over ``timeout_s`` (DNS included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)  # bounds a slow DNS lookup as well
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def resolve_wandb_mode(requested: Optional[str] = None, timeout_s: float = 2.0) -> tuple[str, str]:
    """Return ``(mode, reason)`` with mode in {"online", "offline", "disabled"}.

    ``requested`` may be None/"auto"/"online" (decide from the environment), or "offline",
    "disabled" (or legacy "dryrun"), which are used as they are.
    """
    req = (requested or "auto").strip().lower()
    if req not in {"auto", "online", "offline", "disabled", "dryrun"}:
        raise ValueError(f"unknown W&B mode {requested!r}; use online, offline, disabled or auto")
    if req in {"offline", "disabled", "dryrun"}:
        mode = _ENV_MODES[req]
        return mode, f"W&B mode {mode!r} requested"

    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode in _ENV_MODES:
        mode = _ENV_MODES[env_mode]
        return mode, f"WANDB_MODE={env_mode} is set"

    host, port = wandb_host_port()
    if not (os.environ.get("WANDB_API_KEY") or has_netrc_entry(host)):
        return "offline", (
            f"W&B is not set up (no WANDB_API_KEY, no entry for {host} in {netrc_path()}): logging "
            f"offline; run `wandb login` and {SYNC_HINT}"
        )
    if not tcp_reachable(host, port, timeout_s):
        return "offline", (
            f"W&B server {host}:{port} unreachable within {timeout_s:g} s: logging offline; {SYNC_HINT}"
        )
    return "online", f"W&B set up and {host}:{port} reachable"
