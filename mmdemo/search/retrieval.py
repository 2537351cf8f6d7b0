"""Cross-modal retrieval's plain functions and records: what a search returns, which files an ingest takes,
query checks, the active adapter, and relevance judgements. The stateful part (loaded indexes, their locks)
is `mmdemo.search.service.IndexService`.

The store is the source of truth for media (content hash -> path); the index maps vectors to those ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo import accounts, config
from mmdemo.data import Judgement, Store, default_store
from mmdemo.media.files import MediaError, keep_file, load_image
from mmdemo.media.images import media_folder
from mmdemo.search.manifest import Hit
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.serving.models.base import ImageTextEmbedder, ModelInfo
from mmdemo.serving.models.embedding_adapter import EmbeddingAdapter
from mmdemo.serving.registry import BASE_VERSION, Registry, UnknownTask

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
    index_size: int = 0  # vectors in the index (results are only those whose media the store knows)


def why_no_results(found: Search) -> str:
    """Why a search found nothing: an empty index, or one whose images this data folder has no record of."""
    if not found.index_size:
        return "the index is empty."
    return (
        f"index `{found.index_name}` holds {found.index_size} images, but this data folder"
        f" (`{config.data_dir()}`) has no record of them: the index was built with another `MMDEMO_DATA_DIR`."
        " Point `MMDEMO_INDEX_DIR` at this data folder's indexes, or remove the index"
        f" (`mmdemo index rm {found.index_name}`; the default one rebuilds from the sample photos)."
    )


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


# -- search ---------------------------------------------------------------------------------------------
def results_of(hits: list[Hit], store: Store) -> list[Result]:
    """Hits as results with their files; a hit whose media record the store lost (a deleted database) is
    skipped, not shown as a bare hash."""
    results = []
    for hit in hits:
        item = store.media(hit.id)
        if item is not None:
            results.append(Result(hit.id, item.path, item.name, score=hit.score, rank=len(results) + 1))
    return results


def similarity(text: str, image: str | Path, embedder: ImageTextEmbedder) -> tuple[float, ModelInfo]:
    """The cosine of a text query and one image, as search scores them, and the embedder that did it."""
    query = embedder.encode_texts([check_query(text)])[0]
    return float(np.dot(query, embedder.encode_images([load_image(image).image])[0])), embedder.info


def similarities(
    texts: Sequence[str], images: Sequence[str | Path], embedder: ImageTextEmbedder
) -> list[float | None]:
    """`similarity` of many (text, image) pairs: each distinct text and every readable image encoded once,
    in one batch each; None for an image that cannot be read."""
    distinct = list(dict.fromkeys(check_query(text) for text in texts))
    queries = dict(zip(distinct, embedder.encode_texts(distinct), strict=True))
    loaded: list[tuple[int, Any]] = []
    for position, image in enumerate(images):
        try:
            loaded.append((position, load_image(image).image))
        except MediaError:
            continue
    scores: list[float | None] = [None] * len(images)
    if loaded:
        vectors = embedder.encode_images([image for _, image in loaded])
        for (position, _), vector in zip(loaded, vectors, strict=True):
            scores[position] = float(np.dot(queries[check_query(texts[position])], vector))
    return scores


def check_query(query: str | None) -> str:
    query = (query or "").strip()
    if not query:
        raise ValueError("Type what you are looking for, e.g. “a cup of coffee”.")
    return query


def active_adapter(registry: Registry, embedder: ImageTextEmbedder) -> EmbeddingAdapter | None:
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
    accounts.require_write(user, "relevance judgements")
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
