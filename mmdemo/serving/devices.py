"""Which device and dtype models run on; decided without loading a model."""

from __future__ import annotations

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
