"""A trained retrieval adapter: residual linear maps on an embedder's outputs, one per modality.

`v -> normalize(v + v @ W.T + b)`, with W and b zero at the start (the identity). Text queries go through
the text map; images (stored vectors and image queries) through the image map. It works on vectors only,
so an index's stored vectors are mapped without re-embedding any image. Saved as `adapter.npz` (weights)
and `adapter.json` (which embedder it belongs to) in the model folder the registry loads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmdemo.serving.models.base import LoadContext, ModelInfo, l2_normalize

WEIGHTS_FILE = "adapter.npz"
META_FILE = "adapter.json"
MODALITIES = ("text", "image")


@dataclass(frozen=True)
class AdapterMeta:
    """The embedder whose outputs the adapter maps: it fits no other."""

    embedder: str
    embedder_version: str
    profile: str
    dim: int


@dataclass(frozen=True)
class ResidualMap:
    weight: np.ndarray  # (dim, dim)
    bias: np.ndarray  # (dim,)

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        return l2_normalize(vectors + vectors @ self.weight.T + self.bias)


class EmbeddingAdapter:
    def __init__(self, maps: dict[str, ResidualMap], meta: AdapterMeta, info: ModelInfo) -> None:
        self.maps, self.meta, self.info = maps, meta, info
        self.num_parameters = sum(m.weight.size + m.bias.size for m in maps.values())

    @property
    def label(self) -> str:
        return f"retrieval adapter {self.info.version}"

    def fits(self, embedder: ModelInfo, dim: int) -> bool:
        return (self.meta.embedder, self.meta.embedder_version, self.meta.dim) == (
            embedder.name,
            embedder.version,
            int(dim),
        )

    def adapt(self, vectors: np.ndarray, modality: str) -> np.ndarray:
        """Map embeddings of "text" (queries) or "image" (stored vectors, image queries)."""
        return self.maps[modality](vectors)

    def adapt_images(self, vectors: np.ndarray) -> np.ndarray:
        return self.maps["image"](vectors)


def save(folder: Path, maps: dict[str, ResidualMap], meta: AdapterMeta) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"{name}_{part}": getattr(maps[name], part) for name in MODALITIES for part in ("weight", "bias")
    }
    np.savez(
        folder / WEIGHTS_FILE, **{key: np.asarray(value, dtype=np.float32) for key, value in arrays.items()}
    )
    (folder / META_FILE).write_text(json.dumps(asdict(meta), indent=2))


def load(ctx: LoadContext) -> EmbeddingAdapter:
    """The registry's builder for a `retrieval` version (`ctx.path` is its model folder)."""
    folder = Path(ctx.path or "")
    meta = AdapterMeta(**json.loads((folder / META_FILE).read_text()))
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as arrays:
        maps = {name: ResidualMap(arrays[f"{name}_weight"], arrays[f"{name}_bias"]) for name in MODALITIES}
    return EmbeddingAdapter(maps, meta, ctx.info)
