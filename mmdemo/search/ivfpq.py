"""The compressed index type `ivfpq` of `mmdemo.search.index` (which alone uses this module): for
collections larger than memory.

An IVF-PQ index (optionally behind an OPQ rotation), built with FAISS `index_factory` and trained on a
sample, keeps ~`m` bytes per vector (64 at 512-d, against 2048 for the flat index). Its search is
approximate; the *refine* step re-ranks the top `k × k_factor` candidates exactly against the original
vectors. Both stay on disk: the inverted lists read memory-mapped with FAISS `IO_FLAG_MMAP` (served as
`OnDiskInvertedLists`), the original vectors read row by row with positioned reads (`RowFile`), so a search
touches only the lists it probes and copies only the rows it re-ranks. (FAISS's own `IndexRefineFlat`
cannot be read mapped together with mapped inverted lists, hence the refine step here.)

Below `MIN_TRAIN` vectors there is nothing worth compressing: the index searches the originals exactly,
and trains on its first `MIN_TRAIN`; it re-trains when it outgrows its lists, like the `ivf` type.
Changing a mapped index first reads it into memory (FAISS cannot add to mapped lists).
"""

from __future__ import annotations

import os
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
    # bench/scale.py, 4M clustered 512-d vectors, IVF1264, refine k x 16: probing 1/32 of the lists gave
    # recall@10 0.833, 1/16 0.925, 1/8 0.974 (6, 14 and 19 ms p50 on 2 cores). Refining more candidates
    # (k x 32) gave no more: the lists probed are the limit.
    return max(1, min(lists, max(16, lists // 16)))


def subquantizers(dim: int) -> int:
    return next(m for m in range(min(SUBQUANTIZERS, dim), 0, -1) if dim % m == 0)


def factory_string(dim: int, count: int, opq: bool = USE_OPQ) -> str:
    m = subquantizers(dim)
    # `np`: no polysemous training, a permutation search for Hamming-filtered queries this index does not
    # make; it took 165 s of a 169 s training at 20k × 512 on 2 cores.
    return f"{f'OPQ{m},' if opq else ''}IVF{lists_for(count)},PQ{m}np"


class RowFile:
    """The rows of a saved `.npy` matrix of float32, read on demand with positioned reads.

    Not a memory map: on a fault, the kernel maps up to 16 neighbouring pages of a mapped file that are
    in its page cache ("fault-around"), so re-ranking 160 scattered rows a query would leave gigabytes
    resident in the searching process over a day's queries. A positioned read copies just the row."""

    def __init__(self, path: Path) -> None:
        header = np.load(path, mmap_mode="r")  # the shape and where the data starts; nothing is read
        if header.dtype != np.float32 or header.ndim != 2 or header.size == 0:
            raise ValueError(f"{path.name} is not a non-empty float32 matrix")
        self.shape, self._offset = header.shape, int(header.offset)
        del header
        self._row_bytes = self.shape[1] * 4
        self._fd = os.open(path, os.O_RDONLY)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)  # scattered rows: no read-ahead

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def rows(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError("row out of range")
        out = np.empty((len(positions), self.shape[1]), dtype=np.float32)
        view = memoryview(out).cast("B")
        for slot, row in enumerate(positions.tolist()):
            start = slot * self._row_bytes
            os.preadv(self._fd, [view[start : start + self._row_bytes]], self._offset + row * self._row_bytes)
        return out

    def span(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(len(self), stop)
        out = np.empty((max(0, stop - start), self.shape[1]), dtype=np.float32)
        if len(out):
            os.preadv(self._fd, [memoryview(out).cast("B")], self._offset + start * self._row_bytes)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            return self.span(start, stop)[::step]
        if isinstance(key, int | np.integer):
            return self.rows(np.array([int(key) % len(self)]))[0]
        return self.rows(np.asarray(key))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.span(0, len(self))
        return whole if dtype is None else whole.astype(dtype)


def _ivf(base: Any) -> Any:
    return faiss.extract_index_ivf(base)


class CompressedIndex:
    """IVF-PQ over `raw` (the original vectors), with an exact refine step; duck-types the parts of a
    FAISS index that `VectorIndex` uses (`d`, `ntotal`, `add`, `search`, `reconstruct`, `reconstruct_n`)."""

    def __init__(
        self, dim: int, base: Any = None, raw: np.ndarray | RowFile | None = None, source: Path | None = None
    ):
        self.d = int(dim)
        self.base = base  # None: not trained yet, exact search over `raw`
        # The original vectors: a memory map while read from disk, else a buffer that grows by doubling
        # (ingestion adds small batches; re-allocating per batch would copy the collection each time).
        self._rows: np.ndarray | RowFile = raw if raw is not None else np.zeros((0, dim), dtype=np.float32)
        self._count = len(self._rows)
        self.source = source  # the mapped file, while the index is read from disk
        self.k_factor = K_FACTOR
        self.opq = USE_OPQ

    @property
    def raw(self) -> np.ndarray | RowFile:
        return self._rows if isinstance(self._rows, RowFile) else self._rows[: self._count]

    @property
    def ntotal(self) -> int:
        return self._count

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
            self._rows, self.source = np.array(self.raw), None

    def _append(self, vectors: np.ndarray) -> None:
        needed = self._count + len(vectors)
        if needed > len(self._rows):
            grown = np.empty((max(needed, 2 * len(self._rows), 1024), self.d), dtype=np.float32)
            grown[: self._count] = self.raw
            self._rows = grown
        self._rows[self._count : needed] = vectors
        self._count = needed

    def add(self, vectors: np.ndarray) -> None:
        self._in_memory()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.d)
        self._append(vectors)
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
        trained = isinstance(base, (faiss.IndexPreTransform, faiss.IndexIVF))
        # Untrained (under MIN_TRAIN vectors) it searches every row: those few MB are read into memory.
        raw = RowFile(Path(raw_path)) if mmap and trained else np.load(raw_path)
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
