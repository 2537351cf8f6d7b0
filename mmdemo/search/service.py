"""The index service: the process's named indexes, loaded once, each with its own locks.

One `IndexService` is created per process (`mmdemo.services`) and passed to whoever searches or ingests.
Each index folder has two locks: `write` lets one writer (ingest, rebuild, remove) at a time change it, and
`live` guards the loaded copy that searches read. Embedding happens under `write` only, so searches go on
while images are embedded; a rebuild embeds into a staging index and swaps the new generation in under a
short `live` lock, so searches of the live generation keep answering until the swap.

Across processes (the app and `mmdemo index add` on one index folder), every save takes the index's file lock
(`<root>/<name>/.write.lock`), re-reads the newest generation on disk and applies its own additions or
removals on top of it, so concurrent writers all land; the generation number is taken under that lock.

Ingestion is a pipeline: files are hashed in a thread pool, decoded a batch ahead of the model, recorded in
the store just before their batch is embedded, and the index is saved every few seconds and at the end
(also when the run is interrupted), so an interrupted run leaves the index a subset of the store, and
re-running embeds only what the index lacks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from mmdemo import config
from mmdemo.data import Store, default_store
from mmdemo.media.files import file_hash, load_image
from mmdemo.search import index
from mmdemo.search import manifest as index_manifest
from mmdemo.search.index import VectorIndex
from mmdemo.search.ingest import Change, IndexWrite, decoded_batches, record
from mmdemo.search.retrieval import (
    BATCH_SIZE,
    DEFAULT_INDEX,
    SAMPLES_DIR,
    IngestReport,
    Progress,
    Result,
    Search,
    active_adapter,
    check_query,
    results_of,
    similarities,
    similarity,
    walk,
)
from mmdemo.serving.models.base import ImageTextEmbedder, ModelInfo
from mmdemo.serving.models.embedding_adapter import EmbeddingAdapter
from mmdemo.serving.registry import BASE_VERSION, Registry

LOCK_TIMEOUT_S = 600.0  # how long a save waits for another process's save of the same index


@dataclass
class IndexSlot:
    """One index folder's locks and its copies in memory."""

    write: threading.RLock = field(default_factory=threading.RLock)  # one writer at a time
    live: threading.RLock = field(default_factory=threading.RLock)  # the loaded copy: searches, changes, swap
    loaded: VectorIndex | None = None
    mapped: tuple[tuple[int, str], VectorIndex] | None = None  # (index version, adapter version) -> copy


class IndexService:
    """Named vector indexes under one root, embedded by the registry's `embed` model."""

    def __init__(self, registry: Registry, *, root: Path | None = None, store: Store | None = None) -> None:
        self.registry = registry
        self._root = Path(root) if root is not None else None  # None: `config.index_dir()` at each call
        self._store = store  # None: the process-wide store at each call
        self._guard = threading.Lock()  # the slot table only
        self._slots: dict[Path, IndexSlot] = {}

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else config.index_dir()

    def embedder(self, embedder: ImageTextEmbedder | None = None) -> ImageTextEmbedder:
        return embedder if embedder is not None else self.registry.get("embed")

    def store_or_default(self, store: Store | None = None) -> Store:
        return store or self._store or default_store()

    def _slot(self, name: str) -> IndexSlot:
        folder = (self.root / name).resolve()
        with self._guard:
            return self._slots.setdefault(folder, IndexSlot())

    def _forget(self, name: str) -> None:
        with self._guard:
            self._slots.pop((self.root / name).resolve(), None)

    # -- loading ----------------------------------------------------------------------------------------
    def load(self, name: str, embedder: ModelInfo | None = None) -> VectorIndex:
        """A saved index, kept in memory while its manifest says it is unchanged (the CLI may write it
        too)."""
        slot = self._slot(name)
        with slot.live:
            manifest = index_manifest.read_manifest(name, self.root)
            if embedder is not None:
                index_manifest.check_embedder(manifest, embedder)
            if slot.loaded is None or slot.loaded.manifest != manifest:
                slot.loaded = VectorIndex.load(name, self.root, embedder)
            return slot.loaded

    def open_or_create(
        self, name: str, embedder: ImageTextEmbedder, *, expected_count: int = 0, index_type: str = "auto"
    ) -> tuple[VectorIndex, bool]:
        """The named index, refused if another embedder built it; a new one when there is none yet."""
        if index_manifest.exists(name, self.root):
            return self.load(name, embedder.info), False
        chosen = index.choose_index_type(expected_count) if index_type == "auto" else index_type
        return VectorIndex.create(name, self.root, embedder.info, embedder.dim, chosen), True

    def default_index(
        self,
        *,
        embedder: ImageTextEmbedder | None = None,
        store: Store | None = None,
        progress: Progress | None = None,
    ) -> tuple[VectorIndex, str]:
        """The default index, built from `assets/` on first use and rebuilt when the embedder changed.

        Returns the index and a note of what was done ("" when it was simply loaded)."""
        embedder = self.embedder(embedder)
        try:
            return self.load(DEFAULT_INDEX, embedder.info), ""  # the common case takes no writer's lock
        except (index_manifest.IndexNotFound, index_manifest.EmbedderMismatch):
            pass
        with self._slot(DEFAULT_INDEX).write:  # another caller may have built it meanwhile: look again
            if not index_manifest.exists(DEFAULT_INDEX, self.root):
                report = self.ingest(
                    [SAMPLES_DIR], DEFAULT_INDEX, embedder=embedder, store=store, progress=progress
                )
                note = f"Built the default index of {len(report.added)} sample photos."
            else:
                try:
                    return self.load(DEFAULT_INDEX, embedder.info), ""
                except index_manifest.EmbedderMismatch:
                    report = self.rebuild(DEFAULT_INDEX, embedder=embedder, store=store, progress=progress)
                    note = f"Rebuilt the default index ({len(report.added)} images) for the active embedder."
            return self.load(DEFAULT_INDEX, embedder.info), note

    def open_index(
        self,
        name: str = DEFAULT_INDEX,
        *,
        embedder: ImageTextEmbedder | None = None,
        store: Store | None = None,
    ) -> VectorIndex:
        """A named index for searching; the default one is built or rebuilt as needed."""
        if name == DEFAULT_INDEX:
            return self.default_index(embedder=embedder, store=store)[0]
        return self.load(name, self.embedder(embedder).info)

    def indexed_paths(self, name: str = DEFAULT_INDEX, *, store: Store | None = None) -> list[str]:
        """The files of every item in a saved index, in the order they were added (a labeling job's items).

        The default index is built from the sample photos first if it does not exist yet."""
        store = self.store_or_default(store)
        vectors = self.open_index(name, store=store) if name == DEFAULT_INDEX else self.load(name)
        return [item.path for media_id in vectors.ids if (item := store.media(media_id)) is not None]

    # -- writing ----------------------------------------------------------------------------------------
    @contextmanager
    def writing(
        self,
        name: str,
        embedder: ImageTextEmbedder | None = None,
        *,
        expected_count: int = 0,
        index_type: str = "auto",
    ) -> Iterator[IndexWrite]:
        """The named index opened (or created) for adding, under its writer lock; what was added is saved
        when the block ends, also when it ends by an error or an interrupt."""
        embedder = self.embedder(embedder)
        slot = self._slot(name)
        with slot.write:
            vectors, built = self.open_or_create(
                name, embedder, expected_count=expected_count, index_type=index_type
            )
            write = IndexWrite(vectors, built, lambda current, change: self._commit(slot, current, change)[0])
            try:
                yield write
            finally:
                write.close()

    def ingest(
        self,
        paths: Sequence[str | Path],
        name: str = DEFAULT_INDEX,
        *,
        embedder: ImageTextEmbedder | None = None,
        store: Store | None = None,
        index_type: str = "auto",
        batch_size: int = BATCH_SIZE,
        progress: Progress | None = None,
        show_bar: bool = False,
    ) -> IngestReport:
        """Embed every image under `paths` that the index lacks, in batches; unreadable files are reported."""
        embedder, store = self.embedder(embedder), self.store_or_default(store)
        files, failed = walk(paths)
        with self.writing(name, embedder, expected_count=len(files), index_type=index_type) as write:
            report = IngestReport(index_name=name, failed=failed, built=write.built)
            pending = write.pending(files, report)
            bar = tqdm(total=len(pending), unit="img", desc=f"indexing into {name}", disable=not show_bar)
            if progress:
                progress(0, len(pending))
            done = 0
            recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmdemo-record")
            try:
                for batch in decoded_batches(pending, batch_size):
                    images, ids, kept = [], [], []
                    for path, media_id, loaded in batch:
                        if isinstance(loaded, str):
                            report.failed.append((str(path), loaded))
                            continue
                        images.append(loaded.image)
                        ids.append(media_id)
                        kept.append(path)
                    if images:
                        # The batch is recorded in the store while the model embeds it (no lock held: searches
                        # go on); its vectors are kept only once its records are written.
                        recorded = recorder.submit(record, store, kept, ids, images)
                        embedded = embedder.encode_images(images)
                        recorded.result()
                        write.add(ids, embedded)
                        report.added.extend(str(path) for path in kept)
                    done += len(batch)
                    bar.update(len(batch))
                    if progress:
                        progress(done, len(pending))
            finally:
                recorder.shutdown(wait=True)
                bar.close()
        return report

    def _lock(self, name: str, root: Path | None = None) -> FileLock:
        """The cross-process lock of one index's saves: `<root>/<name>/.write.lock`."""
        folder = Path(root if root is not None else self.root) / name
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / index_manifest.WRITE_LOCK), timeout=LOCK_TIMEOUT_S)

    def _commit(self, slot: IndexSlot, vectors: VectorIndex, change: Change) -> tuple[VectorIndex, int]:
        """Apply `change` to the newest saved generation (another process may have saved since `vectors` was
        read) and save it as the next generation, under the index's file lock. Returns the saved index and
        what `change` returned."""
        try:
            with self._lock(vectors.name, vectors.root):
                current = vectors
                if index_manifest.exists(vectors.name, vectors.root):
                    on_disk = index_manifest.read_manifest(vectors.name, vectors.root)
                    if on_disk != vectors.manifest:
                        current = VectorIndex.load(vectors.name, vectors.root)
                with slot.live:
                    try:
                        changed = change(current)
                        if changed or not index_manifest.exists(current.name, current.root):
                            current.save()
                    except BaseException:
                        slot.loaded = None  # the copy in memory may be ahead of the disk: reload it next time
                        raise
                    slot.loaded = current
                return current, changed
        except Timeout:
            raise index_manifest.VectorIndexError(
                f"index {vectors.name!r} is being saved by another process; try again in a minute"
            ) from None

    def rebuild(
        self,
        name: str = DEFAULT_INDEX,
        *,
        embedder: ImageTextEmbedder | None = None,
        store: Store | None = None,
        progress: Progress | None = None,
        show_bar: bool = False,
    ) -> IngestReport:
        """Re-embed every item of an index with the active embedder (after the embedder changed).

        The items are embedded into a staging index while searches of the live generation go on; the new
        vectors then become the index's next generation, swapped in under a short lock."""
        root, store = self.root, self.store_or_default(store)
        slot = self._slot(name)
        with slot.write:
            manifest = index_manifest.read_manifest(name, root)
            old = VectorIndex.load(name, root)  # no embedder check: that is why it is being rebuilt
            paths = [item.path for media_id in old.ids if (item := store.media(media_id)) is not None]
            if name == DEFAULT_INDEX:
                paths.insert(0, str(SAMPLES_DIR))
            staging = f".{name}.rebuild"
            if index_manifest.exists(staging, root):
                index_manifest.remove_index(staging, root)
            report = self.ingest(
                paths,
                staging,
                embedder=embedder,
                store=store,
                index_type=manifest.index_type,
                progress=progress,
                show_bar=show_bar,
            )
            # The manifest switch of `save` is the one commit point: a crash leaves the old generation or the
            # new one, never neither. A search that reads the new manifest first loads it from disk.
            rebuilt = VectorIndex.load(staging, root)
            with self._lock(name, root):  # the generation number is taken under the lock
                rebuilt.manifest.name = name
                rebuilt.manifest.generation = index_manifest.read_manifest(name, root).generation
                rebuilt.save()
            with slot.live:
                slot.loaded, slot.mapped = rebuilt, None
            index_manifest.remove_index(staging, root)
            self._forget(staging)
        report.index_name = name
        return report

    def remove(self, paths: Sequence[str | Path], name: str = DEFAULT_INDEX) -> tuple[int, list[str]]:
        """Remove the images under `paths` from an index (by content). Returns (removed, not found)."""
        files, missing = walk(paths)
        ids = {}
        for path in files:
            try:
                ids[file_hash(path)] = str(path)
            except OSError:
                missing.append((str(path), str(path)))
        slot = self._slot(name)
        with slot.write:
            vectors = self.load(name)
            absent = [path for media_id, path in ids.items() if media_id not in vectors]
            removed = self._commit(slot, vectors, lambda current: current.remove(list(ids)))[1]
        return removed, absent + [path for path, _ in missing]

    # -- search -----------------------------------------------------------------------------------------
    def search(
        self,
        *,
        text: str | None = None,
        image: str | Path | None = None,
        k: int = 10,
        name: str = DEFAULT_INDEX,
        embedder: ImageTextEmbedder | None = None,
        store: Store | None = None,
    ) -> Search:
        """Search by `text` or by an `image` file (exactly one). A query image is recorded in the store, so
        judgements can point at it."""
        if (text is None) == (image is None):
            raise ValueError("search by a text or by an image, not both or neither")
        embedder, store = self.embedder(embedder), self.store_or_default(store)
        if text is not None:
            query = check_query(text)
            vectors = self.open_index(name, embedder=embedder, store=store)
            results, adapter = self._ranked(
                vectors, embedder.encode_texts([query]), "text", k, store, embedder
            )
            return Search(
                results,
                embedder.info,
                vectors.name,
                vectors.version,
                query_text=query,
                adapter_version=adapter,
                index_size=len(vectors),
            )
        loaded = load_image(image)
        size = {"width": loaded.image.width, "height": loaded.image.height}
        item = store.add_media(Path(image).resolve(), "image", **size)  # type: ignore[arg-type]
        vectors = self.open_index(name, embedder=embedder, store=store)
        results, adapter = self._ranked(
            vectors, embedder.encode_images([loaded.image]), "image", k, store, embedder
        )
        return Search(
            results,
            embedder.info,
            vectors.name,
            vectors.version,
            query_media_id=item.id,
            query_path=str(image),
            adapter_version=adapter,
            index_size=len(vectors),
        )

    def similarity(
        self, text: str, image: str | Path, *, embedder: ImageTextEmbedder | None = None
    ) -> tuple[float, ModelInfo]:
        """The cosine of a text query and one image, as search scores them, and the embedder that did it."""
        return similarity(text, image, self.embedder(embedder))

    def similarities(
        self, texts: Sequence[str], images: Sequence[str | Path], *, embedder: ImageTextEmbedder | None = None
    ) -> tuple[list[float | None], ModelInfo]:
        """`similarity` of many (text, image) pairs in one batch; None for an image that cannot be read."""
        model = self.embedder(embedder)
        return similarities(texts, images, model), model.info

    def _ranked(
        self,
        vectors: VectorIndex,
        query: np.ndarray,
        modality: str,
        k: int,
        store: Store,
        embedder: ImageTextEmbedder,
    ) -> tuple[list[Result], str]:
        """Results of a query vector, through the active adapter when there is one; and its version."""
        slot = self._slot(vectors.name)
        adapter = active_adapter(self.registry, embedder)
        if adapter is None:
            with slot.live:  # a concurrent add or remove changes the FAISS index and its id map in place
                slot.mapped = None  # rolled back: free the mapped copy
                hits = vectors.search(query, k)[0]
            return results_of(hits, store), BASE_VERSION
        with slot.live:
            hits = self.mapped_index(vectors, adapter).search(adapter.adapt(query, modality), k)[0]
        return results_of(hits, store), adapter.info.version

    def mapped_index(self, vectors: VectorIndex, adapter: EmbeddingAdapter) -> VectorIndex:
        """The index's stored vectors through the adapter's image map, kept until the index or adapter
        changes."""
        key, slot = (vectors.version, adapter.info.version), self._slot(vectors.name)
        with slot.live:
            cached = slot.mapped
            if cached is not None and cached[0] == key and len(cached[1]) == len(vectors):
                return cached[1]
            mapped = cached[1] if cached is not None and cached[0][1] == key[1] else None
            if mapped is not None and vectors.ids[: len(mapped)] == mapped.ids:  # only grew: map the new ones
                new_ids = vectors.ids[len(mapped) :]
                mapped.add(new_ids, adapter.adapt_images(vectors.vectors(new_ids)))
            else:  # a removal, or another adapter: map everything again
                mapped = vectors.mapped(adapter.adapt_images, adapter.label)
            slot.mapped = (key, mapped)
            return mapped
