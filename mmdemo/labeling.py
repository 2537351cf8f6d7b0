"""Labeling jobs: work queues for annotators, review of disagreements, progress and agreement.

An admin creates a job (a task, items from a folder, uploads, an index or a query's results, a label set
or prompts, an overlap). Annotators ask for their next item, see the model's prediction pre-filled (made by
the matching tab's service), accept or correct it, or skip it and come back later. Reviewers settle
disagreements; their decisions are stored beside the original labels, which stay.
Every function checks the caller's role first (`accounts.require_role`).
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

from mmdemo import accounts, agreement
from mmdemo.accounts import ADMIN, ANNOTATOR, REVIEWER
from mmdemo.data.store import (
    ANONYMOUS,
    Job,
    JobItem,
    LabelRecord,
    MediaItem,
    Prediction,
    Store,
    default_store,
)
from mmdemo.media.files import MediaError, is_image_path, keep_file, load_image
from mmdemo.media.images import media_folder
from mmdemo.search import retrieval
from mmdemo.services import default_services
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.tasks import captioning, video_classify, vqa

TASKS = ("caption", "vqa", "video", "retrieval")
CATEGORICAL_TASKS = ("video", "retrieval")
RELEVANCE_LABELS = ["relevant", "not relevant"]
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi"}
MAX_ITEMS = 5000
MAX_OVERLAP = 20
QUERY_K = 20  # results of a query that become a job's items, unless told otherwise
# A cosine above this pre-fills "relevant"; only a starting guess for the annotator to correct.
RELEVANCE_THRESHOLD = 0.3
# Items opened by an anonymous visitor and left untouched this long go back to the queue.
ANONYMOUS_HOLD = timedelta(minutes=30)


class LabelingError(ValueError):
    """A request about jobs or labels that cannot be carried out, with a message for the user."""


@dataclass(frozen=True)
class Progress:
    done_by_you: int
    skipped_by_you: int
    total_items: int
    complete_items: int  # items with as many labels as the overlap asks for

    def text(self) -> str:
        return (
            f"**{self.done_by_you} / {self.total_items}** labeled by you · {self.skipped_by_you} skipped · "
            f"job: {self.complete_items} / {self.total_items} complete"
        )


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


# -- jobs -------------------------------------------------------------------------------------------
def _store(store: Store | None) -> Store:
    return store or default_store()


def parse_list(text: str | Sequence[str] | None) -> list[str]:
    """Labels or prompts typed one per line (or comma-separated on one line), blanks and repeats dropped."""
    if text is None:
        return []
    if isinstance(text, str):
        parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    else:
        parts = list(text)
    return list(dict.fromkeys(part.strip() for part in parts if part.strip()))


def is_item_file(path: Path, task: str) -> bool:
    if task == "video":
        return path.suffix.lower() in VIDEO_SUFFIXES or is_image_path(path)
    return is_image_path(path)


def folder_files(folder: str | Path, task: str) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise LabelingError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_item_file(p, task))
    if not files:
        raise LabelingError(f"{folder}: no {'video or image' if task == 'video' else 'image'} files in it")
    return files


def _media_kind(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


LOCAL_OPERATOR = "cli"


def create_job(
    user: str | None,
    name: str,
    task: str,
    files: Sequence[str | Path],
    *,
    labels: Sequence[str] = (),
    prompts: Sequence[str] = (),
    overlap: int = 1,
    source: str = "",
    copy_files: bool = False,
    store: Store | None = None,
) -> Job:
    """A new job over `files`. VQA and retrieval items are (file, question/query) pairs.

    `copy_files` keeps a copy under the data folder (uploads from the browser live in a temp folder).
    `user` None is the operator at the command line, who holds the database file anyway."""
    if user is not None:
        accounts.require_role(user, ADMIN, store=store)
    store = _store(store)
    name = name.strip()
    if not name:
        raise LabelingError("give the job a name")
    if task not in TASKS:
        raise LabelingError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if not 1 <= int(overlap) <= MAX_OVERLAP:
        raise LabelingError(f"overlap must be between 1 and {MAX_OVERLAP}")
    labels, prompts = parse_list(labels), parse_list(prompts)
    if task == "retrieval" and not labels:
        labels = list(RELEVANCE_LABELS)
    if task in CATEGORICAL_TASKS and len(labels) < 2:
        raise LabelingError(f"a {task} job needs at least two labels")
    if task in ("vqa", "retrieval") and not prompts:
        raise LabelingError(f"a {task} job needs {'questions' if task == 'vqa' else 'queries'}")
    paths = [Path(f) for f in files if is_item_file(Path(f), task)]
    if not paths:
        raise LabelingError("no usable files: give images (or videos for a video job)")
    per_file = len(prompts) if task in ("vqa", "retrieval") else 1
    if len(paths) * per_file > MAX_ITEMS:  # before any file is read, hashed or copied
        raise LabelingError(f"{len(paths) * per_file} items is over the {MAX_ITEMS} a job may have; split it")
    media = [_register(path, store, copy_files) for path in paths]
    if task in ("vqa", "retrieval"):
        items = [(m.id, prompt) for prompt in prompts for m in media]
    else:
        items = [(m.id, "") for m in media]
    return store.create_job(
        name,
        task,
        items=items,
        labels=labels,
        prompts=prompts,
        overlap=int(overlap),
        source=source,
        created_by=user or LOCAL_OPERATOR,
    )


@dataclass(frozen=True)
class ItemSource:
    """A job's item files and what the job records as their source."""

    files: list[Path]
    source: str
    query: str | None = None  # the text query whose results these are


def items_from(
    user: str | None,
    task: str,
    *,
    folder: str | Path | None = None,
    files: Sequence[str | Path] = (),
    index_name: str | None = None,
    query: str | None = None,
    k: int = QUERY_K,
    store: Store | None = None,
) -> ItemSource:
    """Items from exactly one of: a folder, files (uploads), every item of an index, or the top-`k` results
    of a text query (searching `index_name`, else the default index). Admins only (`user` None: the CLI)."""
    if user is not None:
        accounts.require_role(user, ADMIN, store=store)
    if task not in TASKS:
        raise LabelingError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    folder = str(folder or "").strip() or None
    index_name = (index_name or "").strip() or None
    query = (query or "").strip() or None
    given = [
        what for what, value in (("a folder", folder), ("files", list(files)), ("a query", query)) if value
    ]
    if index_name and not query:
        given.append("an index")
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise LabelingError(f"take the items from one of: a folder, uploaded files, an index, a query{got}")
    if folder:
        return ItemSource(folder_files(folder, task), folder)
    if files:
        return ItemSource([Path(f) for f in files], "upload")
    name = index_name or retrieval.DEFAULT_INDEX
    if query is None:
        paths = default_services().index.indexed_paths(name, store=store)
        if not paths:
            raise LabelingError(f"index {name!r} holds no items")
        return ItemSource([Path(p) for p in paths], f"index {name}")
    if not 1 <= int(k) <= MAX_ITEMS:
        raise LabelingError(f"take between 1 and {MAX_ITEMS} results of the query, not {k}")
    found = default_services().index.search(text=query, k=int(k), name=name, store=store)
    if not found.results:
        raise LabelingError(f"the query {query!r} found nothing in index {name!r}")
    paths = [Path(result.path) for result in found.results]
    return ItemSource(paths, f"query {query!r}: top {len(paths)} of index {name}", query=query)


def create_job_from(
    user: str | None,
    name: str,
    task: str,
    items: ItemSource,
    *,
    labels: Sequence[str] | str = (),
    prompts: Sequence[str] | str = (),
    overlap: int = 1,
    store: Store | None = None,
) -> Job:
    """A job over items from `items_from`. A retrieval job over a query's results judges each result
    against that query, which becomes the items' prompt."""
    prompts = parse_list(prompts)
    if items.query is not None and task == "retrieval":
        if prompts and prompts != [items.query]:
            raise LabelingError(
                "a retrieval job over a query's results judges them against that query: leave the queries out"
            )
        prompts = [items.query]
    return create_job(
        user,
        name,
        task,
        items.files,
        labels=parse_list(labels),
        prompts=prompts,
        overlap=overlap,
        source=items.source,
        copy_files=items.source == "upload",
        store=store,
    )


def _register(path: Path, store: Store, copy_files: bool) -> MediaItem:
    if not path.is_file():
        raise MediaError(f"{path.name}: file not found")
    kind = _media_kind(path)
    if kind == "image":
        load_image(path)  # refuse corrupt images before they reach a queue
    if copy_files:
        path = keep_file(path, media_folder(store))
    return store.add_media(path, kind)


def item_count(job: Job, *, store: Store | None = None) -> int:
    return len(_store(store).job_items(job.id))


def jobs(user: str, *, store: Store | None = None) -> list[Job]:
    accounts.require_role(user, ANNOTATOR, store=store)
    return _store(store).jobs()


def job(job_id: int | str | None, user: str, *, store: Store | None = None) -> Job:
    accounts.require_role(user, ANNOTATOR, store=store)
    return _job(job_id, _store(store))


def _job(job_id: int | str | None, store: Store) -> Job:
    if job_id in (None, ""):
        raise LabelingError("pick a job first")
    job = store.job(int(job_id))  # type: ignore[arg-type]
    if job is None:
        raise LabelingError(f"no job #{job_id}")
    return job


def _item(job: Job, item_id: int | str | None, store: Store) -> JobItem:
    if item_id in (None, ""):
        raise LabelingError("no item open: press Next item")
    item = store.job_item(int(item_id))  # type: ignore[arg-type]
    if item is None or item.job_id != job.id:
        raise LabelingError(f"no item #{item_id} in job {job.name!r}")
    return item


# -- predictions that pre-fill the label: the tabs' own services, so each is recorded as the tab records it --
def predict(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
    """Make and record the model's prediction for an item (asked on behalf of the job's creator); returns
    the prediction's id."""
    user, registry = job.created_by, default_services().registry
    if job.task == "caption":
        return captioning.caption_image(media.path, user=user, store=store, registry=registry).prediction_id
    if job.task == "vqa":
        return vqa.ask(media.path, item.prompt, user=user, store=store, registry=registry).prediction_id
    if job.task == "video":  # a clip, or a photo standing for a one-frame clip
        prediction_id = video_classify.classify_video(
            media.path, job.labels, user=user, store=store, registry=registry
        ).prediction_id
        return int(prediction_id)  # type: ignore[arg-type]
    return _judge_relevance(job, item, media, store)


def _judge_relevance(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
    score, model = default_services().index.similarity(item.prompt, media.path)
    label = job.labels[0] if score >= RELEVANCE_THRESHOLD else job.labels[1]
    return store.record_prediction(
        "retrieval",
        media_id=media.id,
        input={"query": item.prompt, "file": Path(media.path).name},
        output={"label": label, "score": round(score, 4)},
        model=model,
        user=job.created_by,
    ).id


def playable_copy(media: MediaItem) -> str:
    """A copy of a clip in the temp folder, which Gradio serves from anywhere (job folders and `/data` on
    a Space are outside the folders it may serve); made once per clip."""
    return str(keep_file(media.path, Path(tempfile.gettempdir()) / "mmdemo-clips"))


Predictor = Callable[[Job, JobItem, MediaItem, Store], int]


def prediction_for(
    job: Job, item: JobItem, *, predictor: Predictor | None = predict, store: Store | None = None
) -> Prediction | None:
    """The item's stored prediction, made (once) on first need; None when no model can make one."""
    store = _store(store)
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


def prefill_value(prediction: Prediction | None) -> str:
    """The label a prediction suggests: a caption, a VQA answer, the best video label, a relevance."""
    if prediction is None:
        return ""
    output = prediction.output
    if not isinstance(output, dict):
        return str(output)
    if output.get("fused"):
        return str(output["fused"][0]["label"])
    return str(output.get("label", output.get("answer", "")))


# -- the annotator's queue -----------------------------------------------------------------------------
def labeler_id(user: str, session: str | None) -> str:
    """Anonymous visitors are told apart by their browser session, so each gets their own queue."""
    if accounts.is_anonymous(user) and session:
        return f"{ANONYMOUS}:{session[:16]}"
    return user


def progress(job: Job, user: str, *, store: Store | None = None) -> Progress:
    store = _store(store)
    per_item = Counter(item_id for item_id, _ in {(s.item_id, s.user) for s in store.submissions(job.id)})
    return Progress(
        done_by_you=len(store.assigned_items(job.id, user, "submitted")),
        skipped_by_you=len(store.assigned_items(job.id, user, "skipped")),
        total_items=len(store.job_items(job.id)),
        complete_items=sum(count >= job.overlap for count in per_item.values()),
    )


def next_item(
    job_id: int | str | None, user: str, *, predictor: Predictor | None = None, store: Store | None = None
) -> ItemView | None:
    """The user's open item, else a newly assigned one, else the oldest item they skipped; None when done.

    `predictor` (the UI passes `predict`) pre-fills the label the first time anyone sees the item."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = _store(store)
    job = _job(job_id, store)
    open_items = store.assigned_items(job.id, user, "assigned")
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
    return _view(job, item, user, predictor, store)


def _view(job: Job, item: JobItem, user: str, predictor: Predictor | None, store: Store) -> ItemView:
    prediction = prediction_for(job, item, predictor=predictor, store=store)
    own = store.submissions(job.id, item_id=item.id, user=user)
    return ItemView(
        job=job,
        item=item,
        media=store.media(item.media_id),  # type: ignore[arg-type]
        prefill=prefill_value(prediction),
        model_name=prediction.model_name if prediction else None,
        own_label=own[-1].value if own else None,
        progress=progress(job, user, store=store),
    )


def clean_label(job: Job, value: Any) -> str:
    text = re.sub(r"\s+", " ", str(value or "")).strip()
    if not text:
        raise LabelingError("the label is empty: accept the suggestion or type one")
    if job.task in CATEGORICAL_TASKS and text not in job.labels:
        raise LabelingError(f"{text!r} is not one of this job's labels: {', '.join(job.labels)}")
    if len(text) > 2000:
        raise LabelingError("the label is over 2000 characters")
    return text


def submit(
    job_id: int | str | None, item_id: int | str | None, user: str, value: Any, *, store: Store | None = None
) -> LabelRecord:
    """Append the user's label for one of their items (a later submit of the same item is a correction)."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = _store(store)
    job = _job(job_id, store)
    item = _item(job, item_id, store)
    return store.add_submission(item, user, clean_label(job, value), anonymous=accounts.is_anonymous(user))


def skip(
    job_id: int | str | None, item_id: int | str | None, user: str, *, store: Store | None = None
) -> None:
    """Put the item back at the end of the user's queue; it comes back once new items run out."""
    accounts.require_role(user, ANNOTATOR, store=store)
    store = _store(store)
    job = _job(job_id, store)
    item = _item(job, item_id, store)
    if store.assignment_status(item.id, user) == "submitted":
        return
    store.set_assignment_status(item.id, user, "skipped")


# -- final labels, review and agreement ------------------------------------------------------------------
def normalize(value: Any) -> str:
    """Answers that differ only in case, spacing or a final full stop count as the same."""
    return re.sub(r"\s+", " ", str(value)).strip().rstrip(".").lower()


def latest_per_user(submissions: Sequence[LabelRecord]) -> dict[str, LabelRecord]:
    latest: dict[str, LabelRecord] = {}
    for submission in submissions:
        latest[submission.user] = submission
    return latest


@dataclass(frozen=True)
class FinalLabel:
    item: JobItem
    value: str
    how: str  # "reviewed" | "agreed" | "unreviewed"
    annotators: list[str]
    reviewer: str | None


def item_labels(job: Job, store: Store, *, include_anonymous: bool) -> dict[int, list[LabelRecord]]:
    """Each item's current labels: the latest submission of every annotator."""
    grouped: dict[int, list[LabelRecord]] = {}
    for submission in store.submissions(job.id, include_anonymous=include_anonymous):
        grouped.setdefault(submission.item_id, []).append(submission)
    return {item_id: list(latest_per_user(subs).values()) for item_id, subs in grouped.items()}


def final_labels(
    job: Job, *, include_anonymous: bool = False, include_unreviewed: bool = False, store: Store | None = None
) -> list[FinalLabel]:
    """Labels ready for export: a reviewer's decision, else the annotators' agreed label once the item has
    its full overlap. `include_unreviewed` adds the majority label of every other labeled item."""
    store = _store(store)
    labels = item_labels(job, store, include_anonymous=include_anonymous)
    decisions = {review.item_id: review for review in store.reviews(job.id)}
    result = []
    for item in store.job_items(job.id):
        current = labels.get(item.id, [])
        annotators = [s.user for s in current]
        if (review := decisions.get(item.id)) is not None:
            result.append(FinalLabel(item, review.value, "reviewed", annotators, review.user))
            continue
        if not current:
            continue
        votes = Counter(normalize(s.value) for s in current)
        if len(votes) == 1 and len(current) >= job.overlap:
            result.append(FinalLabel(item, current[0].value, "agreed", annotators, None))
        elif include_unreviewed:
            top = votes.most_common(1)[0][0]
            value = next(s.value for s in current if normalize(s.value) == top)
            result.append(FinalLabel(item, value, "unreviewed", annotators, None))
    return result


@dataclass(frozen=True)
class Disagreement:
    item: JobItem
    media: MediaItem
    labels: list[LabelRecord]


def disagreements(job_id: int | str | None, user: str, *, store: Store | None = None) -> list[Disagreement]:
    """Items whose annotators gave different labels and that no reviewer has decided yet."""
    accounts.require_role(user, REVIEWER, store=store)
    store = _store(store)
    job = _job(job_id, store)
    decided = {review.item_id for review in store.reviews(job.id)}
    result = []
    for item_id, current in item_labels(job, store, include_anonymous=True).items():
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
    store = _store(store)
    job = _job(job_id, store)
    item = _item(job, item_id, store)
    final = clean_label(job, value)
    matching = [
        s for s in store.submissions(job.id, item_id=item.id) if normalize(s.value) == normalize(final)
    ]
    return store.add_review(
        item, reviewer, final, submission_id=matching[-1].id if matching else None, note=note
    )


@dataclass(frozen=True)
class AgreementSummary:
    measure: str  # "Fleiss' kappa" | "exact match"
    value: float | None
    items: int
    pairwise: list[
        tuple[str, str, int, float]
    ]  # (annotator, annotator, shared items, Cohen's kappa or match)


def job_agreement(job_id: int | str | None, user: str, *, store: Store | None = None) -> AgreementSummary:
    """Fleiss' kappa (label tasks) or the exact-match rate (free text), over items labeled by the full
    overlap; and Cohen's kappa (or match rate) for every pair of annotators over the items they share."""
    accounts.require_role(user, REVIEWER, store=store)
    store = _store(store)
    job = _job(job_id, store)
    labels = item_labels(job, store, include_anonymous=True)
    full = [[normalize(s.value) for s in current] for current in labels.values() if len(current) >= 2]
    categorical = job.task in CATEGORICAL_TASKS
    value: float | None = None
    if categorical:
        sizes = Counter(len(group) for group in full)
        if sizes:
            size = sizes.most_common(1)[0][0]
            same_size = [group for group in full if len(group) == size]
            value = agreement.fleiss_kappa_from_labels(same_size)
            full = same_size
    elif full:
        value = agreement.exact_match_rate(full)
    by_user: dict[str, dict[int, str]] = {}
    for item_id, current in labels.items():
        for s in current:
            by_user.setdefault(s.user, {})[item_id] = normalize(s.value)
    pairwise = []
    for first, second in combinations(sorted(by_user), 2):
        shared = sorted(set(by_user[first]) & set(by_user[second]))
        if not shared:
            continue
        a, b = [by_user[first][i] for i in shared], [by_user[second][i] for i in shared]
        score = (
            agreement.cohen_kappa(a, b)
            if categorical
            else agreement.exact_match_rate(list(zip(a, b, strict=True)))
        )
        pairwise.append((first, second, len(shared), score))
    return AgreementSummary("Fleiss' kappa" if categorical else "exact match", value, len(full), pairwise)


def annotator_progress(
    job_id: int | str | None, user: str, *, store: Store | None = None
) -> list[tuple[str, int]]:
    """(annotator, items labeled) for a job."""
    accounts.require_role(user, REVIEWER, store=store)
    store = _store(store)
    job = _job(job_id, store)
    counts = Counter(
        s.user for current in item_labels(job, store, include_anonymous=True).values() for s in current
    )
    return sorted(counts.items())


def label_distribution(
    job_id: int | str | None, user: str, *, top: int = 15, store: Store | None = None
) -> list[tuple[str, int]]:
    """How often each label (or answer) was given, most frequent first."""
    accounts.require_role(user, REVIEWER, store=store)
    store = _store(store)
    job = _job(job_id, store)
    counts = Counter(
        normalize(s.value)
        for current in item_labels(job, store, include_anonymous=True).values()
        for s in current
    )
    return counts.most_common(top)


@dataclass(frozen=True)
class JobSummary:
    job: Job
    items: int
    complete: int
    reviewed: int
    disagreements: int


def job_summaries(user: str, *, store: Store | None = None) -> list[JobSummary]:
    accounts.require_role(user, REVIEWER, store=store)
    store = _store(store)
    result = []
    for job in store.jobs():
        labels = item_labels(job, store, include_anonymous=True)
        reviewed = {review.item_id for review in store.reviews(job.id)}
        result.append(
            JobSummary(
                job=job,
                items=len(store.job_items(job.id)),
                complete=sum(len(current) >= job.overlap for current in labels.values()),
                reviewed=len(reviewed),
                disagreements=sum(
                    len({normalize(s.value) for s in current}) > 1 and item_id not in reviewed
                    for item_id, current in labels.items()
                ),
            )
        )
    return result
