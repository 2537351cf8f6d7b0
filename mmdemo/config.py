"""Settings read from the environment, in one place."""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("auto", "full", "lite", "tiny")
TRUTHY = {"1", "true", "yes", "on"}
FALSY = {"0", "false", "no", "off"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def profile() -> str:
    value = os.environ.get("MMDEMO_PROFILE", "auto").strip().lower() or "auto"
    if value not in PROFILES:
        raise ValueError(f"MMDEMO_PROFILE={value!r} is not one of {', '.join(PROFILES)}")
    return value


def data_dir() -> Path:
    """`MMDEMO_DATA_DIR`, else `/data` where it exists (persistent storage on Spaces), else `./data`."""
    if explicit := os.environ.get("MMDEMO_DATA_DIR"):
        return Path(explicit)
    spaces_volume = Path("/data")
    if spaces_volume.is_dir() and os.access(spaces_volume, os.W_OK):
        return spaces_volume / "mmdemo"
    return Path("data")


def index_dir() -> Path:
    """`MMDEMO_INDEX_DIR`, else `./index`: one folder per named vector index."""
    return Path(os.environ.get("MMDEMO_INDEX_DIR") or "index")


def models_dir() -> Path | None:
    value = os.environ.get("MMDEMO_MODELS_DIR")
    return Path(value) if value else None


def cache_dir() -> Path:
    if value := os.environ.get("MMDEMO_CACHE_DIR"):
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mmdemo"


def db_busy_timeout_s() -> float:
    """How long a database write waits while another process writes (`MMDEMO_DB_BUSY_TIMEOUT_S`, default
    30 seconds) before it gives up with "locked"."""
    value = os.environ.get("MMDEMO_DB_BUSY_TIMEOUT_S", "").strip()
    if not value:
        return 30.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86400:  # also refuses nan and inf
        raise ValueError(f"MMDEMO_DB_BUSY_TIMEOUT_S={value!r} must be a number of seconds from 0 to 86400")
    return seconds


QUANTIZE_MODES = ("", "int8")


def quantize() -> str:
    """`MMDEMO_QUANTIZE=int8`: the registry quantises the Linear layers of CPU models to int8 (dynamic)."""
    value = os.environ.get("MMDEMO_QUANTIZE", "").strip().lower()
    if value in ("0", "none", "off", "fp32"):
        value = ""
    if value not in QUANTIZE_MODES:
        raise ValueError(f"MMDEMO_QUANTIZE={value!r} must be int8 or unset")
    return value


def cpu_bf16() -> bool:
    """Whether models that allow it may run in bfloat16 on a CPU that computes it natively
    (`MMDEMO_CPU_BF16=0`: always float32 on CPU)."""
    value = os.environ.get("MMDEMO_CPU_BF16", "1").strip().lower() or "1"
    if value not in TRUTHY | FALSY:
        raise ValueError(f"MMDEMO_CPU_BF16={value!r} must be 1 or 0")
    return value in TRUTHY


def warmup() -> bool:
    """Whether the app warms its first models up in the background once serving (`MMDEMO_WARMUP=0`: no)."""
    return os.environ.get("MMDEMO_WARMUP", "1").strip().lower() in TRUTHY


def max_loaded() -> int:
    return int(os.environ.get("MMDEMO_MAX_LOADED", "6"))


def gpu_budget_bytes() -> int | None:
    value = os.environ.get("MMDEMO_GPU_MEMORY_GB")
    return int(float(value) * 1024**3) if value else None


def device_override() -> str | None:
    return os.environ.get("MMDEMO_DEVICE") or None


def offline() -> bool:
    return env_flag("MMDEMO_OFFLINE") or env_flag("HF_HUB_OFFLINE")


def anonymous_writes() -> bool:
    """Whether anonymous demo visitors may save labels (`MMDEMO_ANONYMOUS_WRITES=0` refuses them)."""
    return os.environ.get("MMDEMO_ANONYMOUS_WRITES", "1").strip().lower() in TRUTHY


def open_index_writes() -> bool:
    """Whether visitors who are not signed in may add images to a shared index once accounts exist
    (`MMDEMO_OPEN_INDEX_WRITES=1`; an open demo without accounts always lets them)."""
    return env_flag("MMDEMO_OPEN_INDEX_WRITES")


def mcp_server() -> bool:
    """Whether the app also serves its search, caption, ask and classify-video tools over MCP (`MMDEMO_MCP=0`
    turns it off)."""
    return os.environ.get("MMDEMO_MCP", "1").strip().lower() in TRUTHY


def on_spaces() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def oauth_default_role() -> str:
    """The role of a Hugging Face user who signs in on a Space and has no local account."""
    return os.environ.get("MMDEMO_OAUTH_ROLE", "annotator").strip().lower()


def admins() -> set[str] | None:
    """`MMDEMO_ADMINS` (comma-separated user names) may roll back model versions, besides accounts with the
    admin role (`accounts.may_roll_back`); unset and no accounts: anyone may."""
    value = os.environ.get("MMDEMO_ADMINS", "")
    names = {name.strip() for name in value.split(",") if name.strip()}
    return names or None


def on_zero_gpu() -> bool:
    """A Hugging Face ZeroGPU Space (the platform sets `SPACES_ZERO_GPU`)."""
    return env_flag("SPACES_ZERO_GPU")


def model_concurrency(gpu: bool) -> int:
    """How many model calls one tab runs at once: `MMDEMO_CONCURRENCY`, else 1 on a GPU or ZeroGPU (calls
    queue rather than compete for its memory), else 2 on CPU (a second call overlaps the first's decoding
    and database work)."""
    if value := os.environ.get("MMDEMO_CONCURRENCY", "").strip():
        limit = int(value)
        if limit < 1:
            raise ValueError(f"MMDEMO_CONCURRENCY={value!r} must be 1 or more")
        return limit
    return 1 if gpu or on_zero_gpu() else 2


def _count_setting(name: str, default: int, *, low: int = 0, high: int = 1_000_000) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"{name}={value!r} must be a whole number from {low} to {high}")
    return int(value)


def anonymous_max_held() -> int:
    """How many items of a job one anonymous visitor may hold unlabeled at once
    (`MMDEMO_ANONYMOUS_MAX_HELD`, default 3)."""
    return _count_setting("MMDEMO_ANONYMOUS_MAX_HELD", 3, low=1)


def anonymous_max_held_per_address() -> int:
    """How many items of a job all anonymous visitors from one network address may hold unlabeled at once
    (`MMDEMO_ANONYMOUS_MAX_HELD_PER_ADDRESS`, default 10)."""
    return _count_setting("MMDEMO_ANONYMOUS_MAX_HELD_PER_ADDRESS", 10, low=1)


def anonymous_hold_minutes() -> int:
    """After how many minutes untouched an anonymous visitor's items go back to the queue
    (`MMDEMO_ANONYMOUS_HOLD_MINUTES`, default 10)."""
    return _count_setting("MMDEMO_ANONYMOUS_HOLD_MINUTES", 10, low=1, high=7 * 24 * 60)
