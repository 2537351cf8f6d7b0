"""The one reader of labeled data: every label of a task, whatever shape it was given in.

Labels come from four places: a tab's correction of a prediction (`correction`), a relevance judgement in
the Retrieval tab (`judgement`), an annotator's submission in a labeling job (`submission`), and a
reviewer's decision on a job item (`review`). Each becomes a `Label` that says where it came from, who
gave it, which prediction (and model) it corrects, and how settled it is:

- `reviewed`: a reviewer decided the item (a review; or a submission on a decided item);
- `agreed`: every annotator of a job item gave the same label and the item has its full overlap;
- `single`: one person's word that nobody else checks: a tab correction or a relevance judgement;
- `unreviewed`: a job item whose annotators disagree, or that lacks its overlap, and no reviewer decided.

Only current labels are read: an annotator's latest submission per item, a prediction's latest
correction (an earlier one was corrected by its author), and a label with no media item is left out.
Judgements are all read, oldest first: a later verdict on the same result supersedes an earlier one, and
the consumer that groups them decides. Export and fine-tuning read labels here and nowhere else, so they
keep the tabs' rule: a prediction is corrected by the person who made it, or by a reviewer/admin.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mmdemo import accounts
from mmdemo.data import ANONYMOUS, Job, LabelRecord, Store
from mmdemo.tasks import table

SOURCES = ("correction", "judgement", "submission", "review")
SETTLED = ("reviewed", "agreed", "single", "unreviewed")
TEXT_KEYS = ("answer", "caption", "text", "label")


@dataclass(frozen=True)
class Label:
    task: str
    source: str  # one of SOURCES
    id: int  # the record's id in its own table (corrections, judgements, submissions, reviews)
    media_id: str
    prompt: str  # the question or text query; "" for captions and clips (or an image query)
    value: str
    user: str
    anonymous: bool
    settled: str  # one of SETTLED
    prediction_id: int | None = None  # the prediction it corrects, or the one that pre-filled the item
    model_name: str = ""
    model_version: str = ""
    job_id: int | None = None
    item_id: int | None = None
    annotators: tuple[str, ...] = ()  # job labels: the annotators whose current labels the item has
    reviewer: str | None = None
    model_score: float | None = None  # a judged result's score, or the relevance score of a pre-fill
    query_media_id: str | None = None  # judgements: the query image, when the query was an image
    index_name: str | None = None  # judgements: the index searched
    created_at: str = ""


def normalize(value: Any) -> str:
    """Answers that differ only in case, spacing or a final full stop count as the same."""
    return re.sub(r"\s+", " ", str(value)).strip().rstrip(".").lower()


def label_text(output: Any) -> str:
    """The text of a stored output or correction: a string, or the answer/caption field of a dict."""
    if isinstance(output, str):
        return output.strip()
    if isinstance(output, dict):
        for key in TEXT_KEYS:
            if isinstance(output.get(key), str):
                return output[key].strip()
    return ""


def _is_anonymous(user: str) -> bool:
    return user == ANONYMOUS or user.startswith(f"{ANONYMOUS}:")


# -- tab corrections and relevance judgements ----------------------------------------------------------
def corrections(store: Store, task: str) -> Iterator[Label]:
    """The latest correction of every corrected `task` prediction, oldest prediction first. Only
    corrections by the prediction's own user, or by a reviewer/admin, count (the tabs refuse others; one
    stored before they did is left out)."""
    spec = table.get(task)
    may_correct_any = functools.cache(lambda user: accounts.sees_everything(user, store=store))
    for prediction in store.predictions(spec.name):
        allowed = [
            c
            for c in store.corrections(prediction.id)
            if c.user == prediction.user or may_correct_any(c.user)
        ]
        correction = allowed[-1] if allowed else None
        value = label_text(correction.output) if correction is not None else ""
        if correction is None or not value or prediction.media_id is None:
            continue
        yield Label(
            task=spec.name,
            source="correction",
            id=correction.id,
            media_id=prediction.media_id,
            prompt=spec.prompt_of(prediction.input),
            value=value,
            user=correction.user,
            anonymous=_is_anonymous(correction.user),
            settled="single",
            prediction_id=prediction.id,
            model_name=prediction.model_name,
            model_version=prediction.model_version,
            created_at=correction.created_at,
        )


def judgements(store: Store) -> Iterator[Label]:
    """Every relevance judgement, oldest first; the value is the retrieval task's relevant/not relevant."""
    relevant, not_relevant = table.get("retrieval").default_labels
    for judgement in store.judgements():
        yield Label(
            task="retrieval",
            source="judgement",
            id=judgement.id,
            media_id=judgement.result_media_id,
            prompt=judgement.query_text or "",
            value=relevant if judgement.relevant else not_relevant,
            user=judgement.user,
            anonymous=_is_anonymous(judgement.user),
            settled="single",
            model_name=judgement.embedder_name,
            model_version=judgement.embedder_version,
            model_score=judgement.score,
            query_media_id=judgement.query_media_id,
            index_name=judgement.index_name,
            created_at=judgement.created_at,
        )


# -- labeling jobs --------------------------------------------------------------------------------------
def current_by_item(job: Job, store: Store, *, include_anonymous: bool) -> dict[int, list[LabelRecord]]:
    """Each item's current labels: the latest submission of every annotator, in order of first label."""
    latest: dict[int, dict[str, LabelRecord]] = {}
    for submission in store.submissions(job.id, include_anonymous=include_anonymous):
        latest.setdefault(submission.item_id, {})[submission.user] = submission
    return {item_id: list(by_user.values()) for item_id, by_user in latest.items()}


def is_agreed(current: Sequence[LabelRecord], overlap: int) -> bool:
    return len(current) >= overlap and len({normalize(s.value) for s in current}) == 1


def _job_label(
    job: Job, record: LabelRecord, source: str, settled: str, annotators: Sequence[str], store: Store, **extra
) -> Label:
    item = store.job_item(record.item_id)
    prediction = store.prediction(item.prediction_id) if item and item.prediction_id else None
    output = prediction.output if prediction else None
    score = output.get("score") if isinstance(output, dict) else None
    return Label(
        task=job.task,
        source=source,
        id=record.id,
        media_id=item.media_id if item else "",
        prompt=item.prompt if item else "",
        value=str(record.value),
        user=record.user,
        anonymous=record.anonymous,
        settled=settled,
        prediction_id=prediction.id if prediction else None,
        model_name=prediction.model_name if prediction else "",
        model_version=prediction.model_version if prediction else "",
        job_id=job.id,
        item_id=record.item_id,
        annotators=tuple(annotators),
        model_score=float(score) if isinstance(score, int | float) else None,
        created_at=record.created_at,
        **extra,
    )


def job_labels(job: Job, store: Store, *, include_anonymous: bool = True) -> Iterator[Label]:
    """Every current submission of a job and every review decision, by item position."""
    current = current_by_item(job, store, include_anonymous=include_anonymous)
    decisions: dict[int, LabelRecord] = {review.item_id: review for review in store.reviews(job.id)}
    for item in store.job_items(job.id):
        labels = current.get(item.id, [])
        annotators = [s.user for s in labels]
        review = decisions.get(item.id)
        settled = (
            "reviewed" if review else "agreed" if labels and is_agreed(labels, job.overlap) else "unreviewed"
        )
        for submission in labels:
            yield _job_label(job, submission, "submission", settled, annotators, store)
        if review is not None:
            yield _job_label(job, review, "review", "reviewed", annotators, store, reviewer=review.user)


def final_labels(
    job: Job, store: Store, *, include_anonymous: bool = False, include_unreviewed: bool = False
) -> list[Label]:
    """One label per settled item, by position: a reviewer's decision, else the annotators' agreed label
    once the item has its full overlap. `include_unreviewed` adds the majority label of every other
    labeled item (the most given value; a tie is left for review)."""
    current = current_by_item(job, store, include_anonymous=include_anonymous)
    decisions: dict[int, LabelRecord] = {review.item_id: review for review in store.reviews(job.id)}
    result = []
    for item in store.job_items(job.id):
        labels = current.get(item.id, [])
        annotators = [s.user for s in labels]
        if (review := decisions.get(item.id)) is not None:
            result.append(
                _job_label(job, review, "review", "reviewed", annotators, store, reviewer=review.user)
            )
        elif labels and is_agreed(labels, job.overlap):
            result.append(_job_label(job, labels[0], "submission", "agreed", annotators, store))
        elif labels and include_unreviewed:
            ranked = Counter(normalize(s.value) for s in labels).most_common(2)
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue  # a tie (1–1) has no majority: left for review, not settled by who came first
            top = ranked[0][0]
            chosen = next(s for s in labels if normalize(s.value) == top)
            result.append(_job_label(job, chosen, "submission", "unreviewed", annotators, store))
    return result


def jobs_of(store: Store, task: str, job_ids: Iterable[int] | None = None) -> list[Job]:
    """The jobs of `task`, or of those named; a `ValueError` for a job id that is no job of `task`."""
    spec = table.get(task)
    if job_ids is None:
        return store.jobs(spec.name)
    jobs = []
    for job_id in job_ids:
        job = store.job(int(job_id))
        if job is None or job.task != spec.name:
            raise ValueError(f"no labeling job #{job_id} of task {spec.name}")
        jobs.append(job)
    return jobs


def read(
    store: Store,
    task: str,
    *,
    job_ids: Iterable[int] | None = None,
    sources: Sequence[str] = SOURCES,
    include_anonymous: bool = True,
) -> Iterator[Label]:
    """Every label of `task` from `sources`. With `job_ids`, only those jobs' labels (corrections and
    judgements belong to no job)."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown label source {sorted(unknown)[0]!r}; choose from {', '.join(SOURCES)}")
    spec = table.get(task)
    kept = set(sources) & set(spec.label_sources)
    loose: Iterable[Label] = ()
    if job_ids is None and "correction" in kept:
        loose = corrections(store, spec.name)
    if job_ids is None and "judgement" in kept:
        loose = [*loose, *judgements(store)]
    yield from (label for label in loose if include_anonymous or not label.anonymous)
    if {"submission", "review"} & kept:
        for job in jobs_of(store, spec.name, job_ids):
            for label in job_labels(job, store, include_anonymous=include_anonymous):
                if label.source in kept:
                    yield label
