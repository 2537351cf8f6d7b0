"""Which device and dtype models run on; decided without loading a model."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
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


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: oneDNN then runs bfloat16 convolutions natively, about twice as fast as float32
    on EfficientNet-Lite0's batches (`bench/embed.py`); elsewhere bfloat16 is emulated, and slower."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's probes (cpuinfo)
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def pick_dtype(device: str, spec: ModelSpec, quantize: str = "") -> Any:
    """float16 on CUDA for models that allow it; bfloat16 on a CPU that computes it natively for models
    that allow it (unless `MMDEMO_CPU_BF16=0`, or the model is to be int8-quantised from float32);
    float32 otherwise."""
    import torch

    if device.startswith("cuda") and spec.half:
        return torch.float16
    if device == "cpu" and spec.cpu_bf16 and not quantize and config.cpu_bf16() and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


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
