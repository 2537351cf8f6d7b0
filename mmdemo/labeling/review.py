"""Reviewing a job: the items whose annotators disagree, and a reviewer's final label for one of them.

Decisions are stored beside the original labels, which stay; `data.labels.final_labels` settles each item
(a decision, else an agreed label) for export and training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmdemo import accounts
from mmdemo.accounts import REVIEWER
from mmdemo.data import JobItem, LabelRecord, MediaItem, Store
from mmdemo.data.labels import current_by_item, normalize
from mmdemo.labeling import autoretrain
from mmdemo.labeling.jobs import clean_label, get_item, get_job, store_or_default


@dataclass(frozen=True)
class Disagreement:
    item: JobItem
    media: MediaItem
    labels: list[LabelRecord]  # the current label of each annotator


def disagreements(job_id: int | str | None, user: str, *, store: Store | None = None) -> list[Disagreement]:
    """Items whose annotators gave different labels and that no reviewer has decided yet."""
    accounts.require_role(user, REVIEWER, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    decided = {review.item_id for review in store.reviews(job.id)}
    result = []
    for item_id, current in current_by_item(job, store, include_anonymous=True).items():
        if item_id in decided or len({normalize(s.value) for s in current}) < 2:
            continue
        item = store.job_item(item_id)
        result.append(Disagreement(item, store.media(item.media_id), current))  # type: ignore[arg-type]
    return sorted(result, key=lambda d: d.item.position)


def decide(
    job_id: int | str | None,
    item_id: int | str | None,
    reviewer: str,
    value: Any,
    *,
    note: str | None = None,
    store: Store | None = None,
) -> LabelRecord:
    """Store a reviewer's final label; it names the submission it agrees with, if one does."""
    accounts.require_role(reviewer, REVIEWER, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    item = get_item(job, item_id, store)
    final = clean_label(job, value)
    matching = [
        s for s in store.submissions(job.id, item_id=item.id) if normalize(s.value) == normalize(final)
    ]
    record = store.add_review(
        item, reviewer, final, submission_id=matching[-1].id if matching else None, note=note
    )
    autoretrain.after_label(job.id, store)
    return record
