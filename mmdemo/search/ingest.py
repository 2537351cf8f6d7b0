"""Writing images into one index: which files it lacks, decoding ahead of the model, saving as it goes.

`IndexService.writing(name)` opens an `IndexWrite` under the index's writer lock; in-process ingestion
(`IndexService.ingest`) and Ray ingestion (`search.distributed`) both add their embedded batches through it,
so both save the same way: every few seconds, and once more when the run ends or is interrupted.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from mmdemo.data import Store
from mmdemo.media.files import LoadedImage, MediaError, file_hash, is_image_path, load_image
from mmdemo.search import manifest as index_manifest
from mmdemo.search.index import VectorIndex
from mmdemo.search.retrieval import IngestReport
from mmdemo.serving.models.base import batched

# Threads that hash and decode files while the model embeds the previous batch: one on a 2-core machine,
# where more only compete with the model's own threads.
LOADERS = max(1, min(4, (os.cpu_count() or 2) - 1))
SAVE_EVERY_S = 3.0  # ingestion saves the index at most this often (and always at the end)
SAVING_SHARE = 0.2  # ...and spends at most about this share of its time saving (large indexes save slowly)

Change = Callable[[VectorIndex], int]  # applied to the newest generation under the file lock
Commit = Callable[[VectorIndex, Change], VectorIndex]  # the service's save of one change


class IndexWrite:
    """One writer's additions to an index, saved every `SAVE_EVERY_S` seconds (longer when a save takes
    long: at most `SAVING_SHARE` of the time goes to saving) and on `close()`."""

    def __init__(self, vectors: VectorIndex, built: bool, commit: Commit) -> None:
        self.vectors = vectors  # the newest generation this writer has seen
        self.built = built  # the index did not exist before this write
        self._commit = commit
        self._unsaved: list[tuple[list[str], np.ndarray]] = []
        self._saved_at = time.monotonic()
        self._save_every_s = SAVE_EVERY_S

    def pending(self, files: list[Path], report: IngestReport) -> list[tuple[Path, str]]:
        """The image files the index lacks, each once, with their content hash (hashed in a thread pool);
        the others go in the report."""
        pending: list[tuple[Path, str]] = []
        queued: set[str] = set()
        with ThreadPoolExecutor(max_workers=LOADERS) as pool:
            hashed = list(pool.map(_hashed, files))
        for path, media_id, why in hashed:
            if media_id is None:
                report.failed.append((str(path), why or path.name))
            elif media_id in self.vectors or media_id in queued:
                report.already_indexed.append(str(path))
            else:
                pending.append((path, media_id))
                queued.add(media_id)
        return pending

    def add(self, ids: list[str], embedded: np.ndarray) -> None:
        """Keep one embedded batch (its media already recorded in the store); saves when it is time."""
        self._unsaved.append((ids, embedded))
        if time.monotonic() - self._saved_at >= self._save_every_s:
            self.save()

    def save(self) -> None:
        started = time.monotonic()
        if self._unsaved:
            self.vectors = self._commit(self.vectors, additions(self._unsaved))
        self._unsaved, self._saved_at = [], time.monotonic()
        took = self._saved_at - started
        self._save_every_s = max(SAVE_EVERY_S, took * (1 - SAVING_SHARE) / SAVING_SHARE)

    def close(self) -> None:
        """Save what is left; a new index is saved even when empty, so it records its embedder."""
        self.save()
        if self.built and not index_manifest.exists(self.vectors.name, self.vectors.root):
            self.vectors = self._commit(self.vectors, additions([]))


def additions(unsaved: list[tuple[list[str], np.ndarray]]) -> Change:
    """A change that adds the embedded batches (ids already present in the newest generation are skipped)."""

    def add(current: VectorIndex) -> int:
        return sum(current.add(ids, embedded) for ids, embedded in unsaved)

    return add


def decoded_batches(
    pending: list[tuple[Path, str]], batch_size: int
) -> Iterator[list[tuple[Path, str, LoadedImage | str]]]:
    """Batches of (path, media id, decoded image or error), decoded in a thread pool one batch ahead of the
    consumer, so decoding overlaps the model; at most two batches of images are held at once."""
    with ThreadPoolExecutor(max_workers=LOADERS, thread_name_prefix="mmdemo-decode") as pool:
        ahead: deque[list[tuple[Path, str, Future[LoadedImage | str]]]] = deque()
        for batch in batched(pending, batch_size):
            ahead.append([(path, media_id, pool.submit(_decoded, path)) for path, media_id in batch])
            if len(ahead) > 1:
                yield [(path, media_id, future.result()) for path, media_id, future in ahead.popleft()]
        while ahead:
            yield [(path, media_id, future.result()) for path, media_id, future in ahead.popleft()]


def record(store: Store, paths: list[Path], ids: list[str], images: list[Image.Image]) -> None:
    """One batch's media records, in one transaction, under the hashes `pending` already computed."""
    store.add_hashed_images(
        [
            (path.resolve(), media_id, image.width, image.height)
            for path, media_id, image in zip(paths, ids, images, strict=True)
        ]
    )


def _hashed(path: Path) -> tuple[Path, str | None, str | None]:
    """(path, content hash, None), or (path, None, why it was skipped)."""
    if not is_image_path(path):
        return path, None, f"{path.name}: not an image file"
    try:
        return path, file_hash(path), None
    except OSError as error:
        return path, None, f"{path.name}: cannot be read ({error.strerror})"


def _decoded(path: Path) -> LoadedImage | str:
    try:
        return load_image(path)
    except MediaError as error:
        return str(error)
