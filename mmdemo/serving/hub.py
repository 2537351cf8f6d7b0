"""Finding a Hugging Face Hub model on this machine, or fetching it, and failing fast when neither works."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from mmdemo import config

REACHABILITY_TIMEOUT_S = 3.0
_reachability: tuple[float, bool] | None = None
_reachability_lock = threading.Lock()


class ModelUnavailable(RuntimeError):
    """A model's weights are neither on this machine nor reachable."""


def how_to_get(repo_id: str) -> str:
    target = f"$MMDEMO_MODELS_DIR/{repo_id}"
    return (
        f"On a machine with network: `hf download {repo_id} --local-dir {repo_id.split('/')[-1]}`, "
        f"copy that folder here as {target}, and set MMDEMO_MODELS_DIR. "
        "Or run with --profile lite (works offline)."
    )


def local_copy(repo_id: str) -> Path | None:
    """A directory with the model's files: under MMDEMO_MODELS_DIR first, then the Hugging Face cache."""
    if (root := config.models_dir()) is not None:
        for candidate in (root / repo_id, root / repo_id.replace("/", "--"), root / repo_id.split("/")[-1]):
            if candidate.is_dir() and any(candidate.iterdir()):
                return candidate
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def hub_reachable() -> bool:
    """Whether the Hub answers a TCP connection within a few seconds; remembered for a minute."""
    global _reachability
    if config.offline():
        return False
    with _reachability_lock:
        if _reachability and time.monotonic() - _reachability[0] < 60:
            return _reachability[1]
        endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
        host = endpoint.hostname or "huggingface.co"
        port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
        result: list[bool] = []

        def probe() -> None:
            # Nothing may escape this thread: it can outlive the wait below (a DNS lookup or a connect that
            # hangs), and whatever it raises then surfaces in some later, unrelated caller.
            try:
                connection = socket.create_connection((host, port), timeout=REACHABILITY_TIMEOUT_S)
                result.append(connection is not None)
                if connection is not None:
                    connection.close()
            except Exception:  # unreachable, whatever the reason
                result.append(False)

        # getaddrinfo ignores socket timeouts, so the whole probe runs in a thread we stop waiting for.
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(REACHABILITY_TIMEOUT_S + 0.5)
        reachable = bool(result and result[0])
        _reachability = (time.monotonic(), reachable)
        return reachable


def forget_reachability() -> None:
    global _reachability
    with _reachability_lock:
        _reachability = None


def resolve(repo_id: str, allow_patterns: list[str] | None = None) -> Path:
    """A local directory holding `repo_id`: an existing copy, or one downloaded now. Never hangs offline."""
    if (path := local_copy(repo_id)) is not None:
        return path
    if not hub_reachable():
        raise ModelUnavailable(
            f"{repo_id} is not on this machine (looked in MMDEMO_MODELS_DIR and the Hugging Face cache) "
            f"and the Hugging Face Hub cannot be reached. {how_to_get(repo_id)}"
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=allow_patterns))


def availability(repo_id: str) -> tuple[bool, str]:
    """Whether `repo_id` can be loaded here, and why (for `mmdemo models` and the auto profile)."""
    if (path := local_copy(repo_id)) is not None:
        return True, f"local copy at {path}"
    if hub_reachable():
        return True, "Hub reachable; downloads on first use"
    return False, f"{repo_id} has no local copy and the Hub is unreachable"
