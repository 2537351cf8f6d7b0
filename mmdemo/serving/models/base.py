"""Task interfaces every adapter implements, and what the registry hands an adapter's loader."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
