"""Cross-modal retrieval as plain functions: ingest images into a named index, search it, judge results.

The store is the source of truth for media (content hash -> path); the index maps vectors to those ids.
Ingestion records media first and saves the index after every batch, so an interrupted run leaves the index a
subset of the store, and re-running embeds only what the index lacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmdemo import config
from mmdemo.data import Judgement, Store, default_store
from mmdemo.media.files import MediaError, file_hash, is_image_path, keep_file, load_image
from mmdemo.media.images import media_folder
from mmdemo.search import index
from mmdemo.search.index import VectorIndex
from mmdemo.serving import registry
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.serving.models.base import ImageTextEmbedder, ModelInfo, batched
from mmdemo.serving.models.embedding_adapter import EmbeddingAdapter
from mmdemo.serving.registry import BASE_VERSION, UnknownTask

DEFAULT_INDEX = "default"
ADAPTER_TASK = "retrieval"  # the registry task of trained adapters (`mmdemo finetune retrieval`)
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "images"
BATCH_SIZE = 16

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Result:
    media_id: str
    path: str
    name: str  # the file name to show (`path` may be a copy kept under its content hash)
    score: float
    rank: int


@dataclass(frozen=True)
class Search:
    """A ranked answer and everything a relevance judgement of it must record."""

    results: list[Result]
    embedder: ModelInfo
    index_name: str
    index_version: int
    query_text: str | None = None
    query_media_id: str | None = None
    query_path: str | None = None
    adapter_version: str = BASE_VERSION  # the retrieval adapter that ranked the results


@dataclass
class IngestReport:
    index_name: str
    added: list[str] = field(default_factory=list)
    already_indexed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)
    built: bool = False  # a new index was created

    def summary(self) -> str:
        parts = [f"added {len(self.added)}", f"already indexed {len(self.already_indexed)}"]
        text = f"index {self.index_name!r}: " + ", ".join(parts)
        if self.failed:
            text += f"; could not read {len(self.failed)}: " + "; ".join(why for _, why in self.failed)
        return text


logger = logging.getLogger(__name__)
_lock = threading.RLock()  # guards the loaded indexes: one writer at a time, no search during a write
_loaded: dict[Path, VectorIndex] = {}
_mapped: dict[Path, tuple[tuple[int, str], VectorIndex]] = {}  # index folder -> its copy mapped by an adapter


def load(name: str, root: Path | None = None, embedder: ModelInfo | None = None) -> VectorIndex:
    """A saved index, kept in memory while its manifest says it is unchanged (the CLI may write it too)."""
    folder = (_root(root) / name).resolve()
    with _lock:
        manifest = index.read_manifest(name, _root(root))
        if embedder is not None:
            index.check_embedder(manifest, embedder)
        cached = _loaded.get(folder)
        if cached is None or cached.manifest != manifest:
            cached = _loaded[folder] = VectorIndex.load(name, _root(root), embedder)
        return cached


def _embedder(embedder: ImageTextEmbedder | None) -> ImageTextEmbedder:
    return embedder if embedder is not None else registry.get("embed")


def _root(root: Path | None) -> Path:
    return Path(root) if root is not None else config.index_dir()


# -- ingestion --------------------------------------------------------------------------------------------
def walk(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files under the given files and folders (recursively, hidden ones skipped), and the missing paths."""
    files: list[Path] = []
    missing: list[tuple[str, str]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            missing.append((str(path), f"{path}: no such file or folder"))
    return files, missing


def open_or_create(
    name: str,
    embedder: ImageTextEmbedder,
    root: Path | None = None,
    *,
    expected_count: int = 0,
    index_type: str = "auto",
) -> tuple[VectorIndex, bool]:
    """The named index, refused if another embedder built it; a new one when there is none yet."""
    root = _root(root)
    if index.exists(name, root):
        return load(name, root, embedder.info), False
    chosen = index.choose_index_type(expected_count) if index_type == "auto" else index_type
    return VectorIndex.create(name, root, embedder.info, embedder.dim, chosen), True


def ingest(
    paths: Sequence[str | Path],
    name: str = DEFAULT_INDEX,
    *,
    embedder: ImageTextEmbedder | None = None,
    store: Store | None = None,
    root: Path | None = None,
    index_type: str = "auto",
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    show_bar: bool = False,
) -> IngestReport:
    """Embed every image under `paths` that the index lacks, in batches; unreadable files are reported."""
    embedder, store = _embedder(embedder), store or default_store()
    files, failed = walk(paths)
    with _lock:
        vectors, built = open_or_create(
            name, embedder, root, expected_count=len(files), index_type=index_type
        )
    report = IngestReport(index_name=name, failed=failed, built=built)
    pending: list[tuple[Path, str]] = []
    queued: set[str] = set()
    for path in files:
        if not is_image_path(path):
            report.failed.append((str(path), f"{path.name}: not an image file"))
            continue
        try:
            media_id = file_hash(path)
        except OSError as error:
            report.failed.append((str(path), f"{path.name}: cannot be read ({error.strerror})"))
            continue
        if media_id in vectors or media_id in queued:
            report.already_indexed.append(str(path))
        else:
            pending.append((path, media_id))
            queued.add(media_id)
    bar = tqdm(total=len(pending), unit="img", desc=f"indexing into {name}", disable=not show_bar)
    if progress:
        progress(0, len(pending))
    for done, batch in enumerate(batched(pending, batch_size), start=1):
        images, ids, kept = [], [], []
        for path, media_id in batch:
            try:
                loaded = load_image(path)
            except MediaError as error:
                report.failed.append((str(path), str(error)))
                continue
            store.add_media(path.resolve(), "image", width=loaded.image.width, height=loaded.image.height)
            images.append(loaded.image)
            ids.append(media_id)
            kept.append(str(path))
        if images:
            embedded = embedder.encode_images(images)  # outside the lock: searches go on meanwhile
            _add_and_save(vectors, ids, embedded)  # after every batch: an interrupted run keeps what it did
            report.added.extend(kept)
        bar.update(len(batch))
        if progress:
            progress(min(done * batch_size, len(pending)), len(pending))
    bar.close()
    if built and not index.exists(name, vectors.root):
        _add_and_save(vectors, [], None)  # an empty index still records which embedder it is for
    return report


def _add_and_save(vectors: VectorIndex, ids: list[str], embedded: np.ndarray | None) -> None:
    _change_and_save(vectors, lambda: vectors.add(ids, embedded) if ids else 0)  # type: ignore[arg-type]


def _change_and_save(vectors: VectorIndex, change: Callable[[], int]) -> int:
    folder = vectors.folder.resolve()
    with _lock:
        try:
            changed = change()
            if changed or not index.exists(vectors.name, vectors.root):
                vectors.save()
        except BaseException:
            _loaded.pop(folder, None)  # the copy in memory may be ahead of the disk: reload it next time
            raise
        _loaded[folder] = vectors
        return changed


def rebuild(
    name: str = DEFAULT_INDEX,
    *,
    embedder: ImageTextEmbedder | None = None,
    store: Store | None = None,
    root: Path | None = None,
    progress: Progress | None = None,
    show_bar: bool = False,
) -> IngestReport:
    """Re-embed every item of an index with the active embedder (after the embedder changed)."""
    root, store = _root(root), store or default_store()
    manifest = index.read_manifest(name, root)
    old = VectorIndex.load(name, root)  # no embedder check: that is why it is being rebuilt
    paths = [item.path for media_id in old.ids if (item := store.media(media_id)) is not None]
    if name == DEFAULT_INDEX:
        paths.insert(0, str(SAMPLES_DIR))
    staging = f".{name}.rebuild"
    if index.exists(staging, root):
        index.remove_index(staging, root)
    with _lock:
        report = ingest(
            paths,
            staging,
            embedder=embedder,
            store=store,
            root=root,
            index_type=manifest.index_type,
            progress=progress,
            show_bar=show_bar,
        )
        # The new vectors become the next generation of the index itself: its manifest switch is the one
        # commit point, so a crash leaves the old index or the new one, never neither.
        rebuilt = VectorIndex.load(staging, root)
        rebuilt.manifest.name, rebuilt.manifest.generation = name, old.version
        rebuilt.save()
        index.remove_index(staging, root)
        _loaded.pop((root / staging).resolve(), None)
        _loaded.pop((root / name).resolve(), None)
    report.index_name = name
    return report


def default_index(
    *,
    embedder: ImageTextEmbedder | None = None,
    store: Store | None = None,
    root: Path | None = None,
    progress: Progress | None = None,
) -> tuple[VectorIndex, str]:
    """The default index, built from `assets/` on first use and rebuilt when the embedder changed.

    Returns the index and a note of what was done ("" when it was simply loaded)."""
    embedder, root = _embedder(embedder), _root(root)
    with _lock:
        if not index.exists(DEFAULT_INDEX, root):
            report = ingest(
                [SAMPLES_DIR], DEFAULT_INDEX, embedder=embedder, store=store, root=root, progress=progress
            )
            note = f"Built the default index of {len(report.added)} sample photos."
        else:
            try:
                return load(DEFAULT_INDEX, root, embedder.info), ""
            except index.EmbedderMismatch:
                report = rebuild(DEFAULT_INDEX, embedder=embedder, store=store, root=root, progress=progress)
                note = f"Rebuilt the default index ({len(report.added)} images) for the active embedder."
        return load(DEFAULT_INDEX, root, embedder.info), note


def open_index(
    name: str = DEFAULT_INDEX,
    *,
    embedder: ImageTextEmbedder | None = None,
    store: Store | None = None,
    root: Path | None = None,
) -> VectorIndex:
    """A named index for searching; the default one is built or rebuilt as needed."""
    if name == DEFAULT_INDEX:
        return default_index(embedder=embedder, store=store, root=root)[0]
    return load(name, root, _embedder(embedder).info)


def indexed_paths(
    name: str = DEFAULT_INDEX, *, store: Store | None = None, root: Path | None = None
) -> list[str]:
    """The files of every item in a saved index, in the order they were added (a labeling job's items).

    The default index is built from the sample photos first if it does not exist yet."""
    store = store or default_store()
    vectors = open_index(name, store=store, root=root) if name == DEFAULT_INDEX else load(name, root)
    return [item.path for media_id in vectors.ids if (item := store.media(media_id)) is not None]


def remove(
    paths: Sequence[str | Path], name: str = DEFAULT_INDEX, *, root: Path | None = None
) -> tuple[int, list[str]]:
    """Remove the images under `paths` from an index (by content). Returns (removed, not found)."""
    root = _root(root)
    files, missing = walk(paths)
    ids = {}
    for path in files:
        try:
            ids[file_hash(path)] = str(path)
        except OSError:
            missing.append((str(path), str(path)))
    vectors = load(name, root)
    absent = [path for media_id, path in ids.items() if media_id not in vectors]
    removed = _change_and_save(vectors, lambda: vectors.remove(list(ids)))
    return removed, absent + [path for path, _ in missing]


# -- search ---------------------------------------------------------------------------------------------
def _results(vectors: VectorIndex, query: object, k: int, store: Store) -> list[Result]:
    with _lock:  # a concurrent add or remove changes the FAISS index and its id map in place
        hits = vectors.search(query, k)[0]  # type: ignore[arg-type]
    results = []
    for hit in hits:
        item = store.media(hit.id)
        if item is None:  # the store lost the record (a deleted database): skip, not show a bare hash
            continue
        results.append(Result(hit.id, item.path, item.name, score=hit.score, rank=len(results) + 1))
    return results


def similarity(
    text: str, image: str | Path, *, embedder: ImageTextEmbedder | None = None
) -> tuple[float, ModelInfo]:
    """The cosine of a text query and one image, as search scores them, and the embedder that did it."""
    embedder = _embedder(embedder)
    query = embedder.encode_texts([check_query(text)])[0]
    return float(np.dot(query, embedder.encode_images([load_image(image).image])[0])), embedder.info


def check_query(query: str | None) -> str:
    query = (query or "").strip()
    if not query:
        raise ValueError("Type what you are looking for, e.g. “a cup of coffee”.")
    return query


def active_adapter(embedder: ImageTextEmbedder) -> EmbeddingAdapter | None:
    """The newest accepted retrieval adapter (through the registry: a new version is swapped in without a
    restart), if it was trained on this embedder's outputs."""
    try:
        adapter = registry.get(ADAPTER_TASK)
    except UnknownTask:
        return None
    except (ModelUnavailable, OSError, KeyError, ValueError) as error:  # its files were moved or damaged
        logger.warning("retrieval adapter unusable, searching with the base embeddings: %s", error)
        return None
    return adapter if adapter.fits(embedder.info, embedder.dim) else None


def mapped_index(vectors: VectorIndex, adapter: EmbeddingAdapter) -> VectorIndex:
    """The index's stored vectors through the adapter's image map, kept until the index or adapter changes."""
    key, folder = (vectors.version, adapter.info.version), vectors.folder.resolve()
    with _lock:
        cached = _mapped.get(folder)
        if cached is not None and cached[0] == key and len(cached[1]) == len(vectors):
            return cached[1]
        mapped = cached[1] if cached is not None and cached[0][1] == key[1] else None
        if mapped is not None and vectors.ids[: len(mapped)] == mapped.ids:  # only grew: map the new ones
            new_ids = vectors.ids[len(mapped) :]
            mapped.add(new_ids, adapter.adapt_images(vectors.vectors(new_ids)))
        else:  # a removal, or another adapter: map everything again
            mapped = vectors.mapped(adapter.adapt_images, adapter.label)
        _mapped[folder] = (key, mapped)
        return mapped


def _ranked(
    vectors: VectorIndex, query: np.ndarray, modality: str, k: int, store: Store, embedder: ImageTextEmbedder
) -> tuple[list[Result], str]:
    """Results of a query vector, through the active adapter when there is one; and its version."""
    adapter = active_adapter(embedder)
    if adapter is None:
        with _lock:
            _mapped.pop(vectors.folder.resolve(), None)  # rolled back: free the mapped copy
        return _results(vectors, query, k, store), BASE_VERSION
    return _results(
        mapped_index(vectors, adapter), adapter.adapt(query, modality), k, store
    ), adapter.info.version


def search(
    *,
    text: str | None = None,
    image: str | Path | None = None,
    k: int = 10,
    name: str = DEFAULT_INDEX,
    embedder: ImageTextEmbedder | None = None,
    store: Store | None = None,
    root: Path | None = None,
) -> Search:
    """Search by `text` or by an `image` file (exactly one). A query image is recorded in the store, so
    judgements can point at it."""
    if (text is None) == (image is None):
        raise ValueError("search by a text or by an image, not both or neither")
    embedder, store = _embedder(embedder), store or default_store()
    if text is not None:
        query = check_query(text)
        vectors = open_index(name, embedder=embedder, store=store, root=root)
        results, adapter = _ranked(vectors, embedder.encode_texts([query]), "text", k, store, embedder)
        return Search(
            results, embedder.info, vectors.name, vectors.version, query_text=query, adapter_version=adapter
        )
    loaded = load_image(image)
    size = {"width": loaded.image.width, "height": loaded.image.height}
    item = store.add_media(Path(image).resolve(), "image", **size)  # type: ignore[arg-type]
    vectors = open_index(name, embedder=embedder, store=store, root=root)
    results, adapter = _ranked(vectors, embedder.encode_images([loaded.image]), "image", k, store, embedder)
    return Search(
        results,
        embedder.info,
        vectors.name,
        vectors.version,
        query_media_id=item.id,
        query_path=str(image),
        adapter_version=adapter,
    )


def keep_uploads(paths: Sequence[str | Path], store: Store | None = None) -> list[Path]:
    """Copy uploaded files (temporary, deleted by the web server) beside the database, under the names the
    user gave them; an unreadable one stays as it is, for ingestion to report by name."""
    folder = media_folder(store or default_store())
    kept = []
    for path in map(Path, paths):
        try:
            kept.append(keep_file(path, folder))
        except OSError:
            kept.append(path)
    return kept


# -- judgements -----------------------------------------------------------------------------------------
def judge(
    search: Search, rank: int, relevant: bool, *, user: str | None = None, store: Store | None = None
) -> Judgement:
    """Record whether the result at `rank` of `search` is relevant to its query, with full provenance."""
    store = store or default_store()
    matches = [result for result in search.results if result.rank == rank]
    if not matches:
        raise ValueError(f"there is no result #{rank} to judge; search first, then pick a result")
    result = matches[0]
    return store.add_judgement(
        result_media_id=result.media_id,
        rank=result.rank,
        score=result.score,
        relevant=relevant,
        embedder=search.embedder,
        index_name=search.index_name,
        index_version=search.index_version,
        query_text=search.query_text,
        query_media_id=search.query_media_id,
        user=user,
        adapter_version=search.adapter_version,
    )
