"""A labeling item's pre-fill, per task: the tab's own service makes and records the prediction (asked on
behalf of the job's creator, so it is recorded as the tab records it) with the process's services, and the
stored output becomes the label it suggests. The task modules are imported when called: the task table
stays cheap to import."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmdemo.data import Job, JobItem, MediaItem, Prediction, Store
    from mmdemo.services import Services
    from mmdemo.serving.models.base import ModelInfo

# A cosine above this pre-fills the first (relevant) label; only a starting guess for the annotator.
RELEVANCE_THRESHOLD = 0.3


def predict_caption(job: Job, item: JobItem, media: MediaItem, store: Store, services: Services) -> int:
    from mmdemo.tasks import captioning

    return captioning.caption_image(
        media.path, user=job.created_by, store=store, registry=services.registry
    ).prediction_id


def predict_answer(job: Job, item: JobItem, media: MediaItem, store: Store, services: Services) -> int:
    from mmdemo.tasks import vqa

    return vqa.ask(
        media.path, item.prompt, user=job.created_by, store=store, registry=services.registry
    ).prediction_id


def predict_captions(
    job: Job, items: Sequence[JobItem], media: Sequence[MediaItem], store: Store, services: Services
) -> list[int | None]:
    """Caption many items in one batched model call (None for an image that cannot be read)."""
    from mmdemo.tasks import captioning

    results, _ = captioning.caption_images(
        [m.path for m in media], user=job.created_by, skip_bad=True, store=store, registry=services.registry
    )
    by_path = {str(result.path): result.prediction_id for result in results}
    return [by_path.get(str(m.path)) for m in media]


def predict_answers(
    job: Job, items: Sequence[JobItem], media: Sequence[MediaItem], store: Store, services: Services
) -> list[int | None]:
    """Answer the items' questions with one batched model call per image (an image's questions together)."""
    from mmdemo.media.files import MediaError
    from mmdemo.tasks import vqa

    by_image: dict[str, list[int]] = {}
    for index, m in enumerate(media):
        by_image.setdefault(str(m.path), []).append(index)
    ids: list[int | None] = [None] * len(items)
    for path, indices in by_image.items():
        try:
            results = vqa.ask_questions(
                path,
                [items[i].prompt for i in indices],
                user=job.created_by,
                store=store,
                registry=services.registry,
            )
        except (MediaError, ValueError):
            continue
        for index, result in zip(indices, results, strict=True):
            ids[index] = result.prediction_id
    return ids


def predict_video_label(job: Job, item: JobItem, media: MediaItem, store: Store, services: Services) -> int:
    from mmdemo.tasks import video_classify

    result = video_classify.classify_video(
        media.path, job.labels, user=job.created_by, store=store, registry=services.registry
    )
    return int(result.prediction_id)  # type: ignore[arg-type]


def predict_relevance(job: Job, item: JobItem, media: MediaItem, store: Store, services: Services) -> int:
    score, model = services.index.similarity(item.prompt, media.path)
    return _record_relevance(job, item, media, score, model, store)


def _record_relevance(
    job: Job, item: JobItem, media: MediaItem, score: float, model: ModelInfo, store: Store
) -> int:
    label = job.labels[0] if score >= RELEVANCE_THRESHOLD else job.labels[1]
    return store.record_prediction(
        "retrieval",
        media_id=media.id,
        input={"query": item.prompt, "file": Path(media.path).name},
        output={"label": label, "score": round(score, 4)},
        model=model,
        user=job.created_by,
    ).id


def predict_relevances(
    job: Job, items: Sequence[JobItem], media: Sequence[MediaItem], store: Store, services: Services
) -> list[int | None]:
    """`predict_relevance` of many items with one batched embedder call (None for an unreadable image)."""
    scores, model = services.index.similarities([item.prompt for item in items], [m.path for m in media])
    ids: list[int | None] = []
    for item, m, score in zip(items, media, scores, strict=True):
        ids.append(None if score is None else _record_relevance(job, item, m, score, model, store))
    return ids


def _field(output: Any, key: str) -> str:
    """`output[key]` of a dict output; a plain output as text."""
    if not isinstance(output, dict):
        return str(output)
    return str(output.get(key, ""))


def caption_text(prediction: Prediction) -> str:
    return _field(prediction.output, "caption")


def answer_text(prediction: Prediction) -> str:
    return _field(prediction.output, "answer")


def best_video_label(prediction: Prediction) -> str:
    output = prediction.output
    if isinstance(output, dict) and output.get("fused"):
        return str(output["fused"][0]["label"])
    return _field(output, "label")


def relevance_label(prediction: Prediction) -> str:
    return _field(prediction.output, "label")
