"""Task interfaces every adapter implements, and what the registry hands an adapter's loader."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

PUBLIC_TASKS = ("embed", "caption", "vqa", "audio")

T = TypeVar("T")


@dataclass(frozen=True)
class ModelInfo:
    """Who made a prediction: stored with every prediction as provenance."""

    name: str
    version: str
    profile: str
    source: str
    device: str = "cpu"
    dtype: str = "float32"
    baseline: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """One model of one profile, as data. `builder` is "module:function", imported only when loaded."""

    name: str
    task: str
    family: str
    profile: str
    source: str
    source_kind: str  # "hub" | "pypi" | "code"
    builder: str
    options: dict[str, Any] = field(default_factory=dict)
    half: bool = False  # may run in float16 on CUDA
    cpu_bf16: bool = False  # may run in bfloat16 on CPUs with native bf16 (AVX512-BF16, AMX)
    approx_parameters: int = 0  # for the GPU memory budget before a model is loaded
    baseline: bool = False  # a stand-in with limited ability; the UI labels it so
    version: str = "base"
    allow_patterns: tuple[str, ...] | None = None  # files fetched from the Hub


@dataclass
class LoadContext:
    spec: ModelSpec
    device: str
    dtype: Any  # torch.dtype; typed loosely so this module does not import torch
    path: Path | None  # local directory of a hub model, resolved by the registry
    get: Callable[[str], Any]  # another model of the same profile, through the registry

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.spec.name,
            version=self.spec.version,
            profile=self.spec.profile,
            source=self.spec.source,
            device=self.device,
            dtype=str(self.dtype).replace("torch.", ""),
            baseline=self.spec.baseline,
        )


@dataclass
class CaptionOptions:
    strategy: str = "beam"  # "beam" | "sample"
    num_beams: int = 3
    max_length: int = 30
    prefix: str = ""
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int | None = 0


class Caption(str):
    """A caption that is still a plain string, carrying how sure its model was: the mean token
    log-probability of the model's own output (≤ 0; None when the model cannot tell)."""

    logprob: float | None

    def __new__(cls, text: str, logprob: float | None = None) -> Caption:
        caption = super().__new__(cls, text)
        caption.logprob = logprob
        return caption


@dataclass
class Answer:
    answer: str
    top: list[tuple[str, float]] = field(default_factory=list)


class ImageTextEmbedder(Protocol):
    info: ModelInfo
    dim: int
    num_parameters: int

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


class Captioner(Protocol):
    info: ModelInfo
    num_parameters: int

    def caption(self, images: Sequence[Image.Image], options: CaptionOptions | None = None) -> list[str]: ...


class VisualQuestionAnswerer(Protocol):
    info: ModelInfo
    num_parameters: int

    def answer(
        self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 3
    ) -> list[Answer]: ...


class AudioEmbedder(Protocol):
    info: ModelInfo
    num_parameters: int
    sample_rate: int
    zero_shot: bool  # whether encode_texts exists, so labels can be scored without training

    def encode_audio(self, waveforms: Sequence[np.ndarray]) -> np.ndarray: ...
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def count_parameters(*modules: Any) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


# -- preprocessing and inference helpers shared by the image adapters -----------------------------------
def preprocess_workers() -> int:
    """Threads that resize and convert images while the model runs (PIL releases the GIL while resizing)."""
    return max(1, min(4, os.cpu_count() or 1))


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=preprocess_workers(), thread_name_prefix="mmdemo-preprocess")


def parallel_map(function: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
    """`function` over `items` in the preprocessing pool (in order); one item runs inline."""
    if len(items) <= 1:
        return [function(item) for item in items]
    return list(_pool().map(function, items))


def resize_crop(image: Image.Image, short_side: int, crop: int) -> np.ndarray:
    """RGB uint8 pixels (crop, crop, 3): the centre crop of the image with its shorter side resized to
    `short_side` (bilinear). Only the cropped region is resampled (PIL's `box`), and large photos are
    first reduced by whole factors: a third less work than resizing the whole photo, then cropping."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    width, height = image.size
    side = min(crop * min(width, height) / short_side, width, height)  # the crop, in the photo's pixels
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    resized = image.resize((crop, crop), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def normalized_batch(
    pixels: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float], dtype: Any = None
) -> Any:
    """An NCHW tensor (channels_last in memory: the uint8 HWC arrays' own layout) of `(x / 255 - mean) / std`,
    computed in float32 as one multiply-add, then cast to `dtype` (default float32)."""
    import torch

    batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float()
    scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
    normalized = torch.addcmul(shift, batch, scale).contiguous(memory_format=torch.channels_last)
    return normalized if dtype is None else normalized.to(dtype)
