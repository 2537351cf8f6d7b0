"""An annotator's work queue: the next item (with the model's label pre-filled), submit, skip, progress.

Items opened by an anonymous visitor and left untouched for `ANONYMOUS_HOLD` go back to the queue.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mmdemo import accounts
from mmdemo.accounts import ANNOTATOR
from mmdemo.data import ANONYMOUS, Job, JobItem, LabelRecord, MediaItem, Prediction, Store
from mmdemo.labeling import ordering
from mmdemo.labeling.jobs import clean_label, get_item, get_job, store_or_default
from mmdemo.media.files import MediaError, keep_file
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.tasks import table

ANONYMOUS_HOLD = timedelta(minutes=30)


@dataclass(frozen=True)
class Progress:
    done_by_you: int
    skipped_by_you: int
    total_items: int
    complete_items: int  # items with as many labels as the overlap asks for


@dataclass(frozen=True)
class ItemView:
    """What an annotator sees: the item, the model's pre-filled label, and their own last label if any."""

    job: Job
    item: JobItem
    media: MediaItem
    prefill: str
    model_name: str | None
    own_label: str | None
    progress: Progress


Predictor = Callable[[Job, JobItem, MediaItem, Store], int]


def predict(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
    """Make and record the model's prediction for an item, as the job's task makes it (the tab's own
    service, asked on behalf of the job's creator); returns the prediction's id."""
    return table.get(job.task).predict(job, item, media, store)


def playable_copy(media: MediaItem) -> str:
    """A copy of a clip in the temp folder, which Gradio serves from anywhere (job folders and `/data` on
    a Space are outside the folders it may serve); made once per clip."""
    return str(keep_file(media.path, Path(tempfile.gettempdir()) / "mmdemo-clips"))


def prediction_for(
    job: Job, item: JobItem, *, predictor: Predictor | None = predict, store: Store | None = None
) -> Prediction | None:
    """The item's stored prediction, made (once) on first need; None when no model can make one."""
    store = store_or_default(store)
    if item.prediction_id is not None:
        return store.prediction(item.prediction_id)
    if predictor is None:
        return None
    media = store.media(item.media_id)
    try:
        prediction_id = predictor(job, item, media, store)  # type: ignore[arg-type]
    except (ModelUnavailable, MediaError, ValueError):
        return None  # the annotator labels from scratch; the tab says no prediction was made
    store.set_item_prediction(item.id, prediction_id)
    return store.prediction(prediction_id)


def prefill_value(job: Job, prediction: Prediction | None) -> str:
    """The label a prediction suggests: a caption, an answer, a video label, a relevance."""
    return table.get(job.task).prefill_value(prediction)


def labeler_id(user: str, session: str | None) -> str:
    """Anonymous visitors are told apart by their browser session, so each gets their own queue."""
    if accounts.is_anonymous(user) and session:
        return f"{ANONYMOUS}:{session[:16]}"
    return user


def progress(job: Job, user: str, *, store: Store | None = None) -> Progress:
    store = store_or_default(store)
    per_item = Counter(item_id for item_id, _ in {(s.item_id, s.user) for s in store.submissions(job.id)})
    return Progress(
        done_by_you=len(store.assigned_items(job.id, user, "submitted")),
        skipped_by_you=len(store.assigned_items(job.id, user, "skipped")),
        total_items=len(store.job_items(job.id)),
        complete_items=sum(count >= job.overlap for count in per_item.values()),
    )


def next_item(
    job_id: int | str | None,
    user: str,
    *,
    predictor: Predictor | None = None,
    store: Store | None = None,
    served: Callable[[str], str] = ordering.served_version,
) -> ItemView | None:
    """The user's open item, else a newly assigned one, else the oldest item they skipped; None when done.

    `predictor` (the UI passes `predict`) pre-fills the label the first time anyone sees the item, and
    scores a batch of items for the `uncertainty` order when their scores are missing or were made by
    another model version than the one served (`served`: `ordering.served_version`)."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    open_items = store.assigned_items(job.id, user, "assigned")
    if not open_items and job.ordering == "uncertainty" and predictor is not None:
        ordering.refresh_uncertainty(job, store, predictor, served=served)
    item = (
        open_items[0]
        if open_items
        else store.assign_next(
            job.id,
            user,
            job.overlap,
            release_prefix=f"{ANONYMOUS}:",
            release_before=(datetime.now(timezone.utc) - ANONYMOUS_HOLD).isoformat(timespec="milliseconds"),
        )
        or next(iter(store.assigned_items(job.id, user, "skipped")), None)
    )
    if item is None:
        return None
    prediction = prediction_for(job, item, predictor=predictor, store=store)
    own = store.submissions(job.id, item_id=item.id, user=user)
    return ItemView(
        job=job,
        item=item,
        media=store.media(item.media_id),  # type: ignore[arg-type]
        prefill=prefill_value(job, prediction),
        model_name=prediction.model_name if prediction else None,
        own_label=own[-1].value if own else None,
        progress=progress(job, user, store=store),
    )


def submit(
    job_id: int | str | None, item_id: int | str | None, user: str, value: Any, *, store: Store | None = None
) -> LabelRecord:
    """Append the user's label for one of their items (a later submit of the same item is a correction)."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    item = get_item(job, item_id, store)
    return store.add_submission(item, user, clean_label(job, value), anonymous=accounts.is_anonymous(user))


def skip(
    job_id: int | str | None, item_id: int | str | None, user: str, *, store: Store | None = None
) -> None:
    """Put the item back at the end of the user's queue; it comes back once new items run out."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    item = get_item(job, item_id, store)
    if store.assignment_status(item.id, user) == "submitted":
        return
    store.set_assignment_status(item.id, user, "skipped")
