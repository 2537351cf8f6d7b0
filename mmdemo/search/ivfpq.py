"""The compressed index type `ivfpq` of `mmdemo.search.index` (which alone uses this module): for
collections larger than memory.

An IVF-PQ index (optionally behind an OPQ rotation), built with FAISS `index_factory` and trained on a
sample, keeps ~`m` bytes per vector (64 at 512-d, against 2048 for the flat index). Its search is
approximate; the *refine* step re-ranks the top `k × k_factor` candidates exactly against the original
vectors. Both live on disk and are read memory-mapped: the inverted lists with FAISS `IO_FLAG_MMAP` (served
as `OnDiskInvertedLists`), the original vectors as a NumPy memory map, so a search touches only the lists it
probes and the rows it re-ranks. (FAISS's own `IndexRefineFlat` cannot be read mapped together with mapped
inverted lists, hence the refine step here.)

Below `MIN_TRAIN` vectors there is nothing worth compressing: the index searches the originals exactly,
and trains on its first `MIN_TRAIN`; it re-trains when it outgrows its lists, like the `ivf` type.
Changing a mapped index first reads it into memory (FAISS cannot add to mapped lists).
"""

from __future__ import annotations

import mmap as mmaplib
from pathlib import Path
from typing import Any

import faiss
import numpy as np

MIN_TRAIN = 20_000  # PQ's 256 centroids per sub-quantizer want ~40 points each; below this: exact search
MAX_LISTS = 4096
TRAIN_PER_LIST = 64
SUBQUANTIZERS = 64  # bytes per vector at 8 bits each (the most that divides the dimension is taken)
K_FACTOR = 16  # refine: candidates re-ranked exactly = k × K_FACTOR
USE_OPQ = False  # OPQ (an option) trains minutes longer on a small CPU for little recall here


def lists_for(count: int) -> int:
    return max(1, min(int(np.sqrt(max(count, 1))), MAX_LISTS, count // 39))


def probes_for(lists: int) -> int:
    return max(1, min(lists, max(16, lists // 32)))


def subquantizers(dim: int) -> int:
    return next(m for m in range(min(SUBQUANTIZERS, dim), 0, -1) if dim % m == 0)


def factory_string(dim: int, count: int, opq: bool = USE_OPQ) -> str:
    m = subquantizers(dim)
    return f"{f'OPQ{m},' if opq else ''}IVF{lists_for(count)},PQ{m}"


def _ivf(base: Any) -> Any:
    return faiss.extract_index_ivf(base)


class CompressedIndex:
    """IVF-PQ over `raw` (the original vectors), with an exact refine step; duck-types the parts of a
    FAISS index that `VectorIndex` uses (`d`, `ntotal`, `add`, `search`, `reconstruct`, `reconstruct_n`)."""

    def __init__(self, dim: int, base: Any = None, raw: np.ndarray | None = None, source: Path | None = None):
        self.d = int(dim)
        self.base = base  # None: not trained yet, exact search over `raw`
        self.raw = raw if raw is not None else np.zeros((0, dim), dtype=np.float32)
        self.source = source  # the mapped file, while the index is read from disk
        self.k_factor = K_FACTOR
        self.opq = USE_OPQ

    @property
    def ntotal(self) -> int:
        return len(self.raw)

    @property
    def mapped(self) -> bool:
        return self.source is not None

    @property
    def nlist(self) -> int:
        return int(_ivf(self.base).nlist) if self.base is not None else 0

    @property
    def nprobe(self) -> int:
        return int(_ivf(self.base).nprobe) if self.base is not None else 0

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.base is not None:
            _ivf(self.base).nprobe = max(1, min(int(value), self.nlist))

    # -- changes ------------------------------------------------------------------------------------
    def _in_memory(self) -> None:
        if self.source is not None:
            self.base = faiss.read_index(str(self.source)) if self.base is not None else None
            self.raw, self.source = np.array(self.raw), None

    def add(self, vectors: np.ndarray) -> None:
        self._in_memory()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.d)
        self.raw = np.concatenate([self.raw, vectors]) if len(self.raw) else vectors  # VectorIndex copied it
        if self.base is None:
            if len(self.raw) >= MIN_TRAIN:
                self.train(self.raw)
        elif lists_for(len(self.raw)) >= 2 * self.nlist:
            self.train(self.raw)  # outgrown its lists: geometric growth keeps this a constant factor
        else:
            self.base.add(vectors)

    def train(self, vectors: np.ndarray, sample_seed: int = 0) -> None:
        """Train on a sample of `vectors` and add all of them (they must be `raw`)."""
        lists = lists_for(len(vectors))
        base = faiss.index_factory(
            self.d, factory_string(self.d, len(vectors), self.opq), faiss.METRIC_INNER_PRODUCT
        )
        size = min(len(vectors), max(TRAIN_PER_LIST * lists, MIN_TRAIN))
        pick = np.sort(np.random.default_rng(sample_seed).choice(len(vectors), size, replace=False))
        base.train(np.ascontiguousarray(vectors[pick]))
        for start in range(0, len(vectors), 262_144):
            base.add(np.ascontiguousarray(vectors[start : start + 262_144]))
        _ivf(base).nprobe = probes_for(lists)
        self.base = base

    # -- queries ------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.d)
        if self.base is None:
            return _exact(self.raw, np.arange(len(self.raw))[None, :].repeat(len(queries), 0), queries, k)
        if self.k_factor <= 1:
            return self.base.search(queries, k)
        _, candidates = self.base.search(queries, min(len(self.raw), int(k * self.k_factor)))
        return _exact(self.raw, candidates, queries, k)

    def reconstruct(self, position: int) -> np.ndarray:
        return np.array(self.raw[int(position)], dtype=np.float32)

    def reconstruct_n(self, start: int, count: int) -> np.ndarray:
        return np.array(self.raw[int(start) : int(start) + int(count)], dtype=np.float32)

    # -- files --------------------------------------------------------------------------------------
    def write_base(self, path: Path) -> None:
        faiss.write_index(self.base if self.base is not None else faiss.IndexFlatIP(self.d), str(path))

    def write_raw(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.save(handle, np.ascontiguousarray(self.raw, dtype=np.float32))

    @classmethod
    def read(cls, index_path: Path, raw_path: Path, *, mmap: bool = True) -> CompressedIndex:
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        base = faiss.read_index(str(index_path), flags)
        raw = np.load(raw_path, mmap_mode="r" if mmap else None)
        if mmap and hasattr(raw, "_mmap") and hasattr(raw._mmap, "madvise"):
            raw._mmap.madvise(mmaplib.MADV_RANDOM)  # the refine step reads scattered rows: no read-ahead
        trained = isinstance(base, (faiss.IndexPreTransform, faiss.IndexIVF))
        index = cls(raw.shape[1], base if trained else None, raw, Path(index_path) if mmap else None)
        if trained:
            index.nprobe = probes_for(index.nlist)
        return index


def _exact(
    raw: np.ndarray, candidates: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` best of each query's candidate rows of `raw` by exact inner product (-1: no candidate)."""
    k = min(int(k), candidates.shape[1]) if candidates.size else 0
    scores_out = np.full((len(queries), max(k, 0)), -np.inf, dtype=np.float32)
    ids_out = np.full((len(queries), max(k, 0)), -1, dtype=np.int64)
    for row, query in enumerate(queries):
        cand = candidates[row][candidates[row] >= 0]
        if not len(cand):
            continue
        order = np.argsort(cand)  # rows read in file order: sequential reads of the mapped file
        scores = np.asarray(raw[cand[order]], dtype=np.float32) @ query
        top = np.argsort(-scores)[:k]
        scores_out[row, : len(top)] = scores[top]
        ids_out[row, : len(top)] = cand[order][top]
    return scores_out, ids_out
