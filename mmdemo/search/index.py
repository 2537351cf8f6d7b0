"""Named vector indexes on disk: the only module that touches FAISS.

An index lives in `<index root>/<name>/` as three files of one *generation*: `vectors-<g>.faiss`,
`ids-<g>.json` (vector position -> media id in the store) and `manifest.json`. A save writes the new
generation's files (temporary name, then `os.replace`) and replaces the manifest last, so a crash at any point
leaves the previous generation whole; files of other generations are removed on the next save.

Vectors are L2-normalised embeddings and the metric is inner product (= cosine).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from mmdemo.search.ivfpq import CompressedIndex
from mmdemo.search.manifest import (
    MANIFEST,
    WRITE_LOCK,
    Hit,
    Manifest,
    VectorIndexError,
    atomic_write,
    check_embedder,
    now,
    read_manifest,
    rebuild_command,
)
from mmdemo.serving.models.base import ModelInfo

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq")
# Exact search below this size: p50 3.3 ms per query at 20k on 2 threads, 10.6 ms at 50k, where IVF answered
# in 0.13 ms at recall@10 0.995 (bench/search.py --sizes 20000,50000 --types ivf).
FLAT_BELOW = 20_000
# HNSW is kept for whoever asks for it, but never chosen automatically: at 100k it built in 42 s on 2 cores
# where IVF built in 2.5 s at recall@10 0.994, at 1M in 695 s where IVF took 31 s (bench/search.py).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
IVF_NPROBE = 24
IVF_TRAIN_PER_LIST = 32  # k-means sample per list; the build's main cost at 1M
IVF_KMEANS_ITERATIONS = 12  # FAISS's default 25 buys no recall on embeddings, at twice the training time
# Lists from which the coarse quantiser is an HNSW graph, not an exact scan. Measured at 1M clustered 512-d
# vectors (2,000 lists): the same recall either way, but HNSW built in 74 s, exact 22 s; only past 65k lists.
IVF_HNSW_QUANTIZER_FROM = 65_536
FAST_SCAN_FROM = 5_000  # training vectors from which IVF lists hold PQ codes (16 centroids per code to train)
REFINE_FACTOR = 8  # candidates re-ranked on the exact vectors, per result asked for
IVFPQ_ABOVE = 5_000_000  # compressed, memory-mapped: past ~10 GB of flat 512-d vectors
LOAD_ATTEMPTS = 5  # a reader re-reads the manifest when writers replaced the generation it was opening
MAP_CHUNK = 65_536  # vectors read back and mapped at a time


def set_threads(count: int) -> None:
    """Threads FAISS may use (benchmarks pin this to the cores a deployment has)."""
    faiss.omp_set_num_threads(max(1, int(count)))


def choose_index_type(count: int) -> str:
    """Exact search for small collections, an inverted file beyond (it trains and adds fast); compressed
    and read from disk beyond memory."""
    if count >= IVFPQ_ABOVE:
        return "ivfpq"
    return "flat" if count < FLAT_BELOW else "ivf"


def ivf_lists(count: int) -> int:
    # ~2·sqrt(n) lists (2000 at 1M), but at least ~39 points per list.
    return max(1, min(int(2 * np.sqrt(max(count, 1))), count // 39))


def ivf_factory(dim: int, lists: int, training: int) -> str:
    """The FAISS `index_factory` string of an IVF index.

    Once there are enough vectors to train product quantisers, the lists hold 4-bit PQ codes (8 dimensions
    per code, scanned with SIMD "fast scan") and the best `REFINE_FACTOR`·k candidates are re-ranked on the
    exact vectors (`RFlat`). At 1M clustered 512-d vectors on 2 cores, 150 of 2,000 lists: p50 0.66 ms at
    recall@10 0.967, where the same lists holding the vectors themselves took 4.2 ms for 0.945 at 100 lists.
    A coarse quantiser that is an HNSW graph (many lists) saves scanning every centroid per query."""
    quantizer = "_HNSW32" if lists >= IVF_HNSW_QUANTIZER_FROM else ""
    if training >= FAST_SCAN_FROM and dim % 16 == 0:
        return f"IVF{lists}{quantizer},PQ{dim // 8}x4fs,RFlat"
    return f"IVF{lists}{quantizer},Flat"


def set_probes(index: Any, probes: int) -> None:
    """How many lists an IVF index scans per query, set through FAISS's `ParameterSpace` (which also reaches
    an IVF wrapped in other indexes); an HNSW coarse quantiser searches wider as the probes grow."""
    ivf = faiss.extract_index_ivf(index)
    probes = max(1, min(int(probes), ivf.nlist))
    settings = f"nprobe={probes}"
    if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW):
        settings += f",quantizer_efSearch={max(HNSW_EF_SEARCH, 2 * probes)}"
    if isinstance(faiss.downcast_index(index), faiss.IndexRefine):
        settings += f",k_factor_rf={REFINE_FACTOR}"
    faiss.ParameterSpace().set_index_parameters(index, settings)


def ivf_of(index: Any) -> Any:
    """The IVF part of a FAISS index, or None."""
    if index is None:
        return None
    try:
        return faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        return None


def ivf_probes(lists: int) -> int:
    # 1M clustered 512-d vectors, 2,000 lists, 2 threads (bench/search.py, fast-scan codes, refined): 125
    # lists probed gave p50 0.58 ms at recall@10 0.957, 142 (1/14) 0.70 ms at 0.964, 166 (1/12) 0.73-0.91 ms
    # at 0.973: 1/14 keeps a margin on both the 1 ms and the 0.95 goals on a noisy 2-core machine.
    return max(IVF_NPROBE, lists // 14)


def new_faiss_index(index_type: str, dim: int, training: np.ndarray | None = None) -> Any:
    """An empty FAISS index of a type; IVF is trained on `training` (the first vectors it will hold)."""
    if index_type == "flat":
        return faiss.IndexFlatIP(dim)
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        return index
    if index_type == "ivf":
        if training is None or len(training) == 0:
            raise VectorIndexError("an IVF index needs vectors to train on")
        lists = ivf_lists(len(training))
        factory = ivf_factory(dim, lists, len(training))
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = IVF_KMEANS_ITERATIONS
        ivf.cp.min_points_per_centroid = min(IVF_TRAIN_PER_LIST, 39)
        if len(training) > IVF_TRAIN_PER_LIST * lists:  # k-means on a sample: minutes saved at 1M vectors
            pick = np.random.default_rng(0).choice(len(training), IVF_TRAIN_PER_LIST * lists, replace=False)
            training = training[np.sort(pick)]
        index.train(np.ascontiguousarray(training, dtype=np.float32))
        set_probes(index, ivf_probes(lists))
        return index
    if index_type == "ivfpq":  # exact until it has enough vectors to train on (`ivfpq.MIN_TRAIN`)
        compressed = CompressedIndex(dim)
        if training is not None and len(training):
            compressed.add(training)
        return compressed
    raise VectorIndexError(f"unknown index type {index_type!r}; choose from {', '.join(INDEX_TYPES)}")


def readable(index: Any) -> Any:
    """`index`, able to give its stored vectors back: an IVF index builds its id -> list map once (FAISS
    keeps it up to date on later adds; `remove` rebuilds the index anyway)."""
    if isinstance(index, faiss.IndexRefine):
        return index  # reconstructs from its exact vectors
    ivf = ivf_of(index)
    if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
        ivf.make_direct_map()
    return index


def all_vectors(index: Any) -> np.ndarray:
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return readable(index).reconstruct_n(0, index.ntotal)


class VectorIndex:
    """One named index: ids, vectors and manifest, kept in memory and saved crash-safely."""

    def __init__(
        self, root: Path, manifest: Manifest, index: Any, ids: list[str], adapted_by: str | None = None
    ) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._index = index
        self.ids = ids
        self._positions = {media_id: position for position, media_id in enumerate(ids)}
        self.adapted_by = adapted_by  # an in-memory copy of mapped vectors (never saved), or None

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, name: str, root: Path, embedder: ModelInfo, dim: int, index_type: str = "flat"
    ) -> VectorIndex:
        """A new empty index (nothing written until `save`). `auto` is resolved by the caller's size."""
        if index_type not in INDEX_TYPES or index_type == "auto":
            raise VectorIndexError(
                f"pick a concrete index type from {', '.join(INDEX_TYPES[1:])}, not {index_type!r}"
            )
        manifest = Manifest(
            name=name,
            embedder=embedder.name,
            embedder_version=embedder.version,
            profile=embedder.profile,
            dim=int(dim),
            index_type=index_type,
        )
        index = (
            None if index_type == "ivf" else new_faiss_index(index_type, dim)
        )  # IVF trains on its first add
        return cls(root, manifest, index, [])

    @classmethod
    def load(cls, name: str, root: Path, embedder: ModelInfo | None = None) -> VectorIndex:
        """Open a saved index; refuse it when it was built by another embedder than `embedder`."""
        folder = Path(root) / name
        for attempt in range(LOAD_ATTEMPTS):
            manifest = read_manifest(name, root)
            if embedder is not None:
                check_embedder(manifest, embedder)
            generation = manifest.generation
            try:
                ids = json.loads((folder / f"ids-{generation}.json").read_text())
                if manifest.index_type == "ivfpq":  # memory-mapped: searches read only what they touch
                    index = CompressedIndex.read(
                        folder / f"vectors-{generation}.faiss", folder / f"raw-{generation}.npy"
                    )
                else:
                    index = faiss.read_index(str(folder / f"vectors-{generation}.faiss"))
                break
            except (OSError, ValueError, RuntimeError) as error:
                # Another process saved twice since the manifest was read: read the newer generation.
                if attempt + 1 < LOAD_ATTEMPTS and read_manifest(name, root).generation != generation:
                    continue
                raise VectorIndexError(
                    f"index {name!r} is damaged ({error}); {rebuild_command(name)}"
                ) from None
        if index.ntotal != len(ids) or len(ids) != manifest.count:
            raise VectorIndexError(
                f"index {name!r} is inconsistent ({index.ntotal} vectors, {len(ids)} ids); "
                f"{rebuild_command(name)}"
            )
        if manifest.index_type == "ivf" and index.ntotal == 0:
            index = None  # an IVF index trains on its first vectors
        return cls(root, manifest, index, ids)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def folder(self) -> Path:
        return self.root / self.name

    @property
    def version(self) -> int:
        return self.manifest.generation

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, media_id: object) -> bool:
        return media_id in self._positions

    # -- changes ---------------------------------------------------------------------------------
    def add(self, media_ids: Sequence[str], vectors: np.ndarray) -> int:
        """Add vectors under media ids, skipping ids already present or repeated. Returns the number added."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.manifest.dim)
        if len(media_ids) != len(vectors):
            raise VectorIndexError(f"{len(media_ids)} ids for {len(vectors)} vectors")
        keep, seen = [], set()
        for position, media_id in enumerate(media_ids):
            if media_id not in self._positions and media_id not in seen:
                keep.append(position)
                seen.add(media_id)
        if not keep:
            return 0
        vectors = vectors[keep]
        if self._index is None:
            self._index = new_faiss_index(self.manifest.index_type, self.manifest.dim, training=vectors)
        self._index.add(vectors)
        for position in keep:
            self._positions[media_ids[position]] = len(self.ids)
            self.ids.append(media_ids[position])
        ivf = ivf_of(self._index)
        if ivf is not None and ivf_lists(len(self.ids)) >= 2 * ivf.nlist:
            self._retrain()
        return len(keep)

    def _retrain(self) -> None:
        """Re-cluster an IVF index that has outgrown the lists it was trained with (ingestion adds in
        small batches); growth is geometric, so the cost stays a constant factor of the adds."""
        vectors = all_vectors(self._index)
        self._index = new_faiss_index("ivf", self.manifest.dim, training=vectors)
        self._index.add(vectors)

    def remove(self, media_ids: Sequence[str]) -> int:
        """Drop vectors by media id (rebuilds the FAISS index from the vectors that stay)."""
        drop = {media_id for media_id in media_ids if media_id in self._positions}
        if not drop:
            return 0
        keep = [position for position, media_id in enumerate(self.ids) if media_id not in drop]
        vectors = all_vectors(self._index)[keep]
        kept_ids = [self.ids[position] for position in keep]
        self._index = (
            None
            if self.manifest.index_type == "ivf"
            else new_faiss_index(self.manifest.index_type, self.manifest.dim)
        )
        self.ids, self._positions = [], {}
        if kept_ids:
            self.add(kept_ids, vectors)
        return len(drop)

    def save(self) -> None:
        """Write a new generation, then switch the manifest to it (the commit point)."""
        if self.adapted_by is not None:
            raise VectorIndexError(f"index {self.name!r} mapped by {self.adapted_by} is a copy, never saved")
        self.folder.mkdir(parents=True, exist_ok=True)
        generation = self.manifest.generation + 1
        index = self._index if self._index is not None else new_faiss_index("flat", self.manifest.dim)
        if isinstance(index, CompressedIndex):  # the original vectors beside it, for the refine step
            atomic_write(self.folder / f"raw-{generation}.npy", index.write_raw)
            atomic_write(self.folder / f"vectors-{generation}.faiss", index.write_base)
        else:
            atomic_write(
                self.folder / f"vectors-{generation}.faiss", lambda path: faiss.write_index(index, str(path))
            )
        atomic_write(
            self.folder / f"ids-{generation}.json", lambda path: path.write_text(json.dumps(self.ids))
        )
        manifest = Manifest(
            **{**asdict(self.manifest), "generation": generation, "count": len(self.ids), "updated_at": now()}
        )
        atomic_write(
            self.folder / MANIFEST, lambda path: path.write_text(json.dumps(asdict(manifest), indent=2))
        )
        self.manifest = manifest
        self._remove_stale_generations()

    def _remove_stale_generations(self) -> None:
        # Saves are serialised by the service's file lock; a reader that loses its generation here re-reads
        # the manifest (`load`).
        current = {f"vectors-{self.version}.faiss", f"ids-{self.version}.json", MANIFEST, WRITE_LOCK}
        current.add(f"raw-{self.version}.npy")  # ivfpq: the original vectors
        for path in self.folder.iterdir():
            if path.name not in current:
                path.unlink(missing_ok=True)

    # -- queries ---------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """The `k` nearest items of each query, best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.manifest.dim)
        if not self.ids or k <= 0:
            return [[] for _ in range(len(queries))]
        scores, positions = self._index.search(queries, min(int(k), len(self.ids)))
        return [
            [
                Hit(id=self.ids[position], score=float(score), rank=rank)
                for rank, (score, position) in enumerate(zip(row_scores, row_positions, strict=True), start=1)
                if position >= 0
            ]
            for row_scores, row_positions in zip(scores, positions, strict=True)
        ]

    def tune(self, breadth: int) -> None:
        """How widely an approximate index searches (IVF lists probed, HNSW candidates); flat ignores it."""
        if isinstance(self._index, CompressedIndex):
            self._index.nprobe = int(breadth)
        elif ivf_of(self._index) is not None:
            set_probes(self._index, int(breadth))
        elif isinstance(self._index, faiss.IndexHNSW):
            self._index.hnsw.efSearch = max(1, int(breadth))

    @property
    def breadth(self) -> int | None:
        if isinstance(self._index, CompressedIndex):
            return int(self._index.nprobe)
        if (ivf := ivf_of(self._index)) is not None:
            return int(ivf.nprobe)
        if isinstance(self._index, faiss.IndexHNSW):
            return int(self._index.hnsw.efSearch)
        return None

    def vector(self, media_id: str) -> np.ndarray:
        if media_id not in self._positions:
            raise VectorIndexError(f"{media_id[:12]} is not in index {self.name!r}")
        return readable(self._index).reconstruct(self._positions[media_id])

    # -- stored vectors read back (a trained adapter maps them; nothing is re-embedded) ---------------
    def vectors(self, media_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of `media_ids` (each must be in the index), in that order."""
        missing = [media_id for media_id in media_ids if media_id not in self._positions]
        if missing:
            raise VectorIndexError(f"{missing[0][:12]} is not in index {self.name!r}")
        if not media_ids:
            return np.zeros((0, self.manifest.dim), dtype=np.float32)
        index = readable(self._index)
        return np.stack([index.reconstruct(self._positions[media_id]) for media_id in media_ids])

    def sample(self, count: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
        """Up to `count` stored vectors picked at random (seeded), with their media ids."""
        chosen = np.random.default_rng(seed).permutation(len(self.ids))[: max(0, int(count))]
        ids = [self.ids[position] for position in sorted(chosen)]
        return ids, self.vectors(ids)

    def mapped(self, transform: Callable[[np.ndarray], np.ndarray], label: str) -> VectorIndex:
        """An in-memory index of the same type over `transform(stored vectors)` (read back from FAISS, in
        chunks), under the same ids and manifest; `label` says which adapter made it. Never saved."""
        readable(self._index)
        chunks = [
            np.asarray(transform(self._index.reconstruct_n(start, min(MAP_CHUNK, len(self.ids) - start))))
            for start in range(0, len(self.ids), MAP_CHUNK)
        ]
        index_type = self.manifest.index_type
        copy = VectorIndex(
            self.root,
            self.manifest,
            None if index_type == "ivf" else new_faiss_index(index_type, self.manifest.dim),
            [],
            adapted_by=label,
        )
        if chunks:
            copy.add(list(self.ids), np.concatenate(chunks))
        return copy
