"""A job's final labels as export rows, per task, each with the split key that keeps an item (the media
file, or the query for retrieval) on one side of the train/validation split.

caption: (image, caption) · vqa: (image, question, answer) · video: (clip, label) ·
retrieval: (query, positive, hard_negatives). Every row carries its provenance: job, item, annotators,
reviewer, how the label was settled, and the model that pre-filled it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmdemo.data import Job, Store
    from mmdemo.data.labels import Label

MAX_HARD_NEGATIVES = 5
Row = tuple[str, dict[str, Any]]


def provenance(job: Job, final: Label, store: Store) -> dict[str, Any]:
    from mmdemo.tasks import table  # the table imports this module

    prediction = store.prediction(final.prediction_id) if final.prediction_id else None
    return {
        "job": job.name,
        "item_id": final.item_id,
        "media_id": final.media_id,
        "label_source": final.settled,
        "annotators": list(final.annotators),
        "reviewer": final.reviewer or "",
        "model_name": final.model_name,
        "model_version": final.model_version,
        "model_prediction": table.get(job.task).prefill_value(prediction),
    }


def _path(final: Label, store: Store) -> str:
    return store.media(final.media_id).path  # type: ignore[union-attr]


def caption_rows(job: Job, finals: Sequence[Label], store: Store) -> list[Row]:
    return [
        (f.media_id, {"image": _path(f, store), "caption": f.value, **provenance(job, f, store)})
        for f in finals
    ]


def vqa_rows(job: Job, finals: Sequence[Label], store: Store) -> list[Row]:
    return [
        (
            f.media_id,
            {"image": _path(f, store), "question": f.prompt, "answer": f.value, **provenance(job, f, store)},
        )
        for f in finals
    ]


def clip_rows(job: Job, finals: Sequence[Label], store: Store) -> list[Row]:
    return [
        (f.media_id, {"clip": _path(f, store), "label": f.value, **provenance(job, f, store)}) for f in finals
    ]


def retrieval_rows(job: Job, finals: Sequence[Label], store: Store) -> list[Row]:
    """One row per (query, relevant image); hard negatives are the images judged not relevant that the
    model scored highest for the same query."""
    positive_label, negative_label = job.labels[0], job.labels[1]
    by_query: dict[str, list[Label]] = {}
    for final in finals:
        by_query.setdefault(final.prompt, []).append(final)
    result = []
    for query, judged in by_query.items():
        negatives = [f for f in judged if f.value == negative_label]
        negatives.sort(key=lambda f: -(f.model_score or 0.0))
        negative_paths = [_path(f, store) for f in negatives[:MAX_HARD_NEGATIVES]]
        for final in judged:
            if final.value != positive_label:
                continue
            row = {
                "query": query,
                "positive": _path(final, store),
                "hard_negatives": negative_paths,
                **provenance(job, final, store),
            }
            result.append((query, row))
    return result
