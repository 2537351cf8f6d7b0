"""Which device and dtype models run on; decided without loading a model."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import Any

from mmdemo import config
from mmdemo.serving.models.base import ModelSpec


def pick_device(override: str | None, cuda_available: bool, mps_available: bool) -> str:
    """CUDA, else Apple MPS, else CPU; an explicit override (`MMDEMO_DEVICE`) wins."""
    if override:
        return override
    if cuda_available:
        return "cuda"
    if mps_available:
        return "mps"
    return "cpu"


def detect_device() -> str:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return pick_device(config.device_override(), torch.cuda.is_available(), bool(mps and mps.is_available()))


def gpu_expected(device_nodes: Path = Path("/dev")) -> bool:
    """Whether models will run on a GPU, guessed without importing torch (the app is built before any model
    loads): `MMDEMO_DEVICE`, a ZeroGPU Space, or the NVIDIA driver's device files."""
    if override := config.device_override():
        return not override.startswith("cpu")
    return config.on_zero_gpu() or any(device_nodes.glob("nvidia[0-9]*"))


def pick_dtype(device: str, spec: ModelSpec) -> Any:
    import torch

    return torch.float16 if device.startswith("cuda") and spec.half else torch.float32


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
HEAP_KEEPS_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Have glibc keep freed blocks in the heap instead of handing each back to the kernel.

    By default a block over 128 kB is its own memory map, unmapped when freed; a convolution's activations
    (megabytes per image) were then page-faulted afresh on every call. On 2 cores that was over a third of
    EfficientNet-Lite0's time, and more the larger the batch, which made batches slower than single images
    (`bench/embed.py`). The heap then holds up to its peak, as jemalloc or tcmalloc would. Returns whether
    the C library took the settings (not glibc: nothing is changed)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return all(
        mallopt(parameter, value)
        for parameter, value in (
            (_M_MMAP_THRESHOLD, HEAP_KEEPS_BYTES),
            (_M_TRIM_THRESHOLD, HEAP_KEEPS_BYTES),
            (_M_TOP_PAD, 64 << 20),
        )
    )
