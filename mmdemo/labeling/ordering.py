"""The order a job's queue hands out items: `random`, `uncertainty` (least-sure first) or `diverse`.

Each order is a score per item, stored with what made it (`Store.save_item_scores`); the queue's one
atomic INSERT … SELECT takes the highest score first (`Store.assign_next`), so ordering never changes the
overlap, skip and hold guarantees.
- `position`: the items' creation order (no scores): jobs made before orders existed.
- `random`: a shuffle seeded by the job's id, made once.
- `diverse`: k-center greedy over the items' embeddings (the served embedder; a clip by its middle
  frame): each next item is the one farthest from those before it, so the first labels cover the set.
- `uncertainty`: the task table's `uncertainty` of the served model's prediction for each item, computed
  in batches and stored with the served version; when another version is served, the stored scores are
  stale and are computed again, a batch per queue request (lazily: the queue never waits for a whole job),
  with one model call per batch where the task predicts lists (the task table's `predict_batch`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from mmdemo.data import Job, JobItem, MediaItem, Store
from mmdemo.media.files import MediaError
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.tasks import table

if TYPE_CHECKING:
    from mmdemo.serving.registry import Registry

ORDERS = ("random", "uncertainty", "diverse")  # what an admin chooses from
POSITION = "position"  # the items' creation order: jobs made before orders existed, and the API's default
BATCH = 16  # items scored per queue request when the uncertainty scores are missing or stale

Predictor = Callable[[Job, JobItem, MediaItem, Store], int]
# one model call for many items: a prediction id per item, None for one it cannot read
BatchPredictor = Callable[[Job, Sequence[JobItem], Sequence[MediaItem], Store], list[int | None]]
Embedder = Callable[[Sequence[MediaItem]], tuple[np.ndarray, str]]  # vectors, and who made them


class OrderError(ValueError):
    """An order that does not exist or cannot be used for this job."""


def default_order(task: str) -> str:
    """`uncertainty` where a model scores the task, else `random`."""
    return "uncertainty" if table.get(task).uncertainty is not None else "random"


def check_order(task: str, ordering: str | None) -> str:
    """The order asked for (blank: the task's default); an `OrderError` for one that cannot be used."""
    ordering = (ordering or "").strip() or default_order(task)
    if ordering not in (*ORDERS, POSITION):
        raise OrderError(f"unknown order {ordering!r}; choose from {', '.join(ORDERS)}")
    if ordering == "uncertainty" and table.get(task).uncertainty is None:
        raise OrderError(f"no model scores {task} items yet: choose random or diverse")
    return ordering


# -- random and diverse: made once --------------------------------------------------------------------
def random_scores(items: Sequence[JobItem], seed: int) -> dict[int, float]:
    ranks = list(range(len(items)))
    random.Random(seed).shuffle(ranks)
    return {item.id: float(len(items) - rank) for item, rank in zip(items, ranks, strict=True)}


def k_center_greedy(vectors: np.ndarray) -> list[int]:
    """Row indices in k-center greedy order: start nearest the mean, then always the row farthest from
    every row chosen so far (the greedy 2-approximation of the k-center cover)."""
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) == 0:
        return []
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    first = int(np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1)))
    order = [first]
    nearest = np.linalg.norm(x - x[first], axis=1)
    for _ in range(len(x) - 1):
        nearest[order[-1]] = -1.0
        pick = int(np.argmax(nearest))
        order.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[pick], axis=1))
        nearest[order] = -1.0
    return order


def diverse_scores(items: Sequence[JobItem], vectors: np.ndarray) -> dict[int, float]:
    order = k_center_greedy(vectors)
    return {items[index].id: float(len(order) - rank) for rank, index in enumerate(order)}


def served_embedder(media: Sequence[MediaItem], registry: Registry | None = None) -> tuple[np.ndarray, str]:
    """The served embedder's vectors of images (a clip: its middle frame); `registry` None: the process's."""
    from mmdemo.media.files import load_image
    from mmdemo.media.video import sample_clip
    from mmdemo.serving.registry import default_registry

    embedder = (registry or default_registry()).get("embed")
    images = [
        sample_clip(m.path, 1, None).frames[0] if m.kind == "video" else load_image(m.path).image
        for m in media
    ]
    vectors = [embedder.encode_images(images[i : i + 32]) for i in range(0, len(images), 32)]
    return np.concatenate(vectors) if vectors else np.zeros(
        (0, 1)
    ), f"{embedder.info.name}@{embedder.info.version}"


def prepare(
    job: Job, store: Store, *, embed: Embedder | None = None, registry: Registry | None = None
) -> None:
    """Make a random or diverse job's scores, once (uncertainty is scored when the queue is asked). A diverse
    order embeds with `embed`, else with the embedder `registry` serves (None: the process's)."""
    if job.ordering in ("uncertainty", POSITION) or store.item_scores(job.id, job.ordering):
        return
    items = store.job_items(job.id)
    if job.ordering == "random":
        store.save_item_scores(job.id, "random", random_scores(items, job.id), f"seed {job.id}")
        return
    media = [store.media(item.media_id) for item in items]
    if embed is None:
        vectors, made_by = served_embedder(media, registry)  # type: ignore[arg-type]
    else:
        vectors, made_by = embed(media)  # type: ignore[arg-type]
    store.save_item_scores(job.id, "diverse", diverse_scores(items, vectors), made_by)


# -- uncertainty: with the served version, refreshed lazily --------------------------------------------
def served_version(task: str, registry: Registry | None = None) -> str:
    """What serves the task's models now ("embed=name@v3;video=head@v2") in `registry` (None: the
    process's): scores made by anything else are stale."""
    from mmdemo.serving.registry import UnknownTask, default_registry

    active = registry or default_registry()
    parts = []
    for model_task in table.get(task).model_tasks:
        try:
            spec = active.serving_spec(model_task)
        except UnknownTask:  # a task no model serves (yet): not part of what scores
            continue
        parts.append(f"{model_task}={spec.name}@{spec.version}")
    return ";".join(parts)


def stale_items(job: Job, store: Store, version: str, limit: int | None = None) -> list[tuple[JobItem, bool]]:
    """Up to `limit` items the queue may still hand out (fewer holders than the overlap) with no
    uncertainty score made by `version`, by position, each with whether it has a label (one indexed
    query: the items' held/submitted counts, not the job's assignments)."""
    return store.unscored_items(job.id, job.overlap, "uncertainty", version, limit)


def one_by_one(predictor: Predictor) -> BatchPredictor:
    """A batch predictor calling a per-item one (an item it cannot read gets None)."""

    def predict_batch(
        job: Job, items: Sequence[JobItem], media: Sequence[MediaItem], store: Store
    ) -> list[int | None]:
        ids: list[int | None] = []
        for item, medium in zip(items, media, strict=True):
            try:
                ids.append(predictor(job, item, medium, store))
            except (ModelUnavailable, MediaError, ValueError):  # an item the model cannot read
                ids.append(None)
        return ids

    return predict_batch


def refresh_uncertainty(
    job: Job,
    store: Store,
    predictor: Predictor | None = None,
    *,
    batch_predictor: BatchPredictor | None = None,
    version: str | None = None,
    limit: int | None = BATCH,
    served: Callable[[str], str] = served_version,
) -> int:
    """Score up to `limit` (None: all) items whose score is missing or was made by another version than
    the one served, `BATCH` items per predictor call (`batch_predictor`, else `predictor` item by item):
    the prediction also becomes the pre-fill of an item nobody labeled yet, and its uncertainty is stored.
    An item the model cannot read is asked last. Returns how many were scored."""
    uncertainty = table.get(job.task).uncertainty
    if uncertainty is None or (predictor is None and batch_predictor is None):
        return 0
    predict_batch = batch_predictor or one_by_one(predictor)  # type: ignore[arg-type]
    version = served(job.task) if version is None else version
    todo = stale_items(job, store, version, limit)
    scored = 0
    batches = [todo[i : i + BATCH] for i in range(0, len(todo), BATCH)]
    for batch in tqdm(batches, desc=f"scoring {job.name}", unit="batch", disable=len(batches) < 2):
        media = [store.media(item.media_id) for item, _ in batch]
        try:
            ids = predict_batch(job, [item for item, _ in batch], media, store)  # type: ignore[arg-type]
        except (ModelUnavailable, MediaError, ValueError):
            ids = [None] * len(batch)
        scores: dict[int, float] = {}
        for (item, labeled), prediction_id in zip(batch, ids, strict=True):
            if prediction_id is None:
                scores[item.id] = -1.0
                continue
            if not labeled:
                store.set_item_prediction(item.id, prediction_id)
            value = uncertainty(store.prediction(prediction_id))  # type: ignore[arg-type]
            scores[item.id] = -1.0 if value is None else float(value)
        store.save_item_scores(job.id, "uncertainty", scores, version)
        scored += len(scores)
    return scored
