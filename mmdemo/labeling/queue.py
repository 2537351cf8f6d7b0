"""An annotator's work queue: the next item (with the model's label pre-filled), submit, skip, progress.

Every step is a few indexed lookups, flat in the number of labels a job has. An anonymous visitor is one
labeler per browser (its network address and user agent, so a page reload keeps the queue), holds at most
`MMDEMO_ANONYMOUS_MAX_HELD` unlabeled items, all visitors from one address at most
`MMDEMO_ANONYMOUS_MAX_HELD_PER_ADDRESS`, and items left untouched for `MMDEMO_ANONYMOUS_HOLD_MINUTES` go
back to the queue. A pre-fill is made once per item, by the first opener; the others wait for it.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdemo import accounts, config
from mmdemo.accounts import ANNOTATOR
from mmdemo.data import ANONYMOUS, Job, JobItem, LabelRecord, MediaItem, Prediction, Store
from mmdemo.labeling import autoretrain, ordering
from mmdemo.labeling.jobs import LabelingError, clean_label, get_item, get_job, store_or_default
from mmdemo.labeling.ordering import BatchPredictor, Predictor
from mmdemo.media.files import MediaError, keep_file
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.tasks import table

if TYPE_CHECKING:
    from mmdemo.services import Services

ANONYMOUS_HOLD: timedelta | None = None  # None: `MMDEMO_ANONYMOUS_HOLD_MINUTES`
PREFILL_WAIT_S = 60.0  # how long an opener waits for another's pre-fill before labeling without one
PREFILL_STALE = timedelta(minutes=5)  # a claim this old (its maker died) may be taken over


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
    model_version: str | None = None  # of the pre-fill: "base", or the fine-tuned version that made it


@dataclass(frozen=True)
class ModelPredictor:
    """The task table's predictors over the process's services: what the tab and the API pre-fill with.

    Each call makes and records the model's prediction for an item as the job's task makes it (the tab's own
    service, asked on behalf of the job's creator) and returns its id."""

    services: Services

    def __call__(self, job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
        return table.get(job.task).predict(job, item, media, store, self.services)

    def served(self, task: str) -> str:
        """The versions serving the task's models: uncertainty scores made by others are stale."""
        return ordering.served_version(task, self.services.registry)

    def batch(self, task: str) -> BatchPredictor | None:
        """Many items in one model call, where the task predicts lists."""
        predict_batch = table.get(task).predict_batch
        if predict_batch is None:
            return None
        return lambda job, items, media, store: predict_batch(job, items, media, store, self.services)


def playable_copy(media: MediaItem) -> str:
    """A copy of a clip in the temp folder, which Gradio serves from anywhere (job folders and `/data` on
    a Space are outside the folders it may serve); made once per clip."""
    return str(keep_file(media.path, Path(tempfile.gettempdir()) / "mmdemo-clips"))


def prediction_for(
    job: Job, item: JobItem, *, predictor: Predictor | None, store: Store | None = None
) -> Prediction | None:
    """The item's stored prediction, made on first need by exactly one caller (threads or processes: the
    item's claim is taken in a write transaction) while the others wait for it; None when no model can
    make one."""
    store = store_or_default(store)
    if item.prediction_id is not None:
        return store.prediction(item.prediction_id)
    if predictor is None:
        return None
    deadline, pause = time.monotonic() + PREFILL_WAIT_S, 0.02
    while True:
        stale = (datetime.now(timezone.utc) - PREFILL_STALE).isoformat(timespec="milliseconds")
        prediction_id, state = store.claim_prefill(item.id, stale_before=stale)
        if state == "done":
            return store.prediction(prediction_id)  # type: ignore[arg-type]
        if state == "mine":
            return _make_prediction(job, item, predictor, store)
        if state == "failed" or time.monotonic() > deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)


def _make_prediction(job: Job, item: JobItem, predictor: Predictor, store: Store) -> Prediction | None:
    media = store.media(item.media_id)
    try:
        prediction_id = predictor(job, item, media, store)  # type: ignore[arg-type]
    except (ModelUnavailable, MediaError, ValueError):
        store.fail_prefill(item.id)
        return None  # the annotator labels from scratch; the tab says no prediction was made
    except BaseException:
        store.fail_prefill(item.id)
        raise
    store.set_item_prediction(item.id, prediction_id)
    return store.prediction(prediction_id)


def prefill_value(job: Job, prediction: Prediction | None) -> str:
    """The label a prediction suggests: a caption, an answer, a video label, a relevance."""
    return table.get(job.task).prefill_value(prediction)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def labeler_id(user: str, session: str | None = None, *, browser: str | None = None) -> str:
    """Anonymous visitors are told apart by their browser: `browser` is what stays the same across page
    reloads (the UI passes the network address and user agent); the session hash when nothing else is
    known. Signed-in users are themselves."""
    if accounts.is_anonymous(user) and (key := browser or session):
        return f"{ANONYMOUS}:{_digest(key)}"
    return user


def client_key(address: str | None) -> str | None:
    """What the queue stores of an anonymous visitor's network address: a digest, never the address."""
    return f"addr:{_digest(address)}" if address else None


def anonymous_hold() -> timedelta:
    if ANONYMOUS_HOLD is not None:
        return ANONYMOUS_HOLD
    return timedelta(minutes=config.anonymous_hold_minutes())


def progress(job: Job, user: str, *, store: Store | None = None) -> Progress:
    counts = store_or_default(store).queue_counts(job.id, user, job.overlap)
    return Progress(
        done_by_you=counts["submitted"],
        skipped_by_you=counts["skipped"],
        total_items=counts["total"],
        complete_items=counts["complete"],
    )


def next_item(
    job_id: int | str | None,
    user: str,
    *,
    predictor: Predictor | None = None,
    store: Store | None = None,
    client: str | None = None,
    served: Callable[[str], str] | None = None,
) -> ItemView | None:
    """The user's open item, else a newly assigned one, else the oldest item they skipped; None when done.

    `predictor` (the UI passes a `ModelPredictor`) pre-fills the label the first time anyone sees the item,
    and scores a batch of items for the `uncertainty` order when their scores are missing or were made by
    another model version than the one served (`served`; a `ModelPredictor`'s own by default). `client` is an
    anonymous visitor's network address, for the cap on what one address holds."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    item = next(iter(store.assigned_items(job.id, user, "assigned", limit=1)), None)
    if item is None and job.ordering == "uncertainty" and predictor is not None:
        # the task's own predictor scores a batch in one model call where the task predicts lists
        model = predictor if isinstance(predictor, ModelPredictor) else None
        batch = model.batch(job.task) if model else None
        served = served or (model.served if model else ordering.served_version)
        ordering.refresh_uncertainty(job, store, predictor, batch_predictor=batch, served=served)
    item = item or _assign(job, user, client_key(client), store)
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
        model_version=(prediction.model_version or None) if prediction else None,
    )


def _assign(job: Job, user: str, client: str | None, store: Store) -> JobItem | None:
    """A new item for the user, else their oldest skipped one. An anonymous visitor gets a new one only
    while under the caps on what they, and everyone from their address, hold."""
    anonymous = accounts.is_anonymous(user)
    release_before = (datetime.now(timezone.utc) - anonymous_hold()).isoformat(timespec="milliseconds")
    per_address = config.anonymous_max_held_per_address() if anonymous else None
    item = store.assign_next(
        job.id,
        user,
        job.overlap,
        release_prefix=f"{ANONYMOUS}:",
        release_before=release_before,
        client=client if anonymous else None,
        max_open=config.anonymous_max_held() if anonymous else None,
        max_open_client=per_address,
    )
    if item is not None:
        return item
    skipped = next(iter(store.assigned_items(job.id, user, "skipped", limit=1)), None)
    crowded = per_address is not None and client is not None
    if skipped is None and crowded and store.open_assignments(job.id, client=client) >= per_address:  # type: ignore[operator]
        raise LabelingError(
            f"visitors from your network address hold {per_address} unlabeled items of this job "
            "already, the most anonymous visitors may: label those, or sign in"
        )
    return skipped


def submit(
    job_id: int | str | None, item_id: int | str | None, user: str, value: Any, *, store: Store | None = None
) -> LabelRecord:
    """Append the user's label for one of their items (a later submit of the same item is a correction)."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    item = get_item(job, item_id, store)
    record = store.add_submission(item, user, clean_label(job, value), anonymous=accounts.is_anonymous(user))
    autoretrain.after_label(job.id, store)
    return record


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
