"""A job's numbers for reviewers: agreement, items per annotator, how often each label was given, and a
summary of every job. Plain data; the Dashboard formats it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations

from mmdemo import accounts
from mmdemo.accounts import REVIEWER
from mmdemo.data import Job, LabelRecord, Store
from mmdemo.data.labels import current_by_item, final_labels, normalize
from mmdemo.labeling import agreement
from mmdemo.labeling.jobs import get_job, store_or_default
from mmdemo.tasks import table

FLEISS = "Fleiss' kappa"
EXACT_MATCH = "exact match"
COHEN = "Cohen's kappa"


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    shared_items: int
    score: float  # Cohen's kappa (label tasks) or the exact-match rate (free text)


@dataclass(frozen=True)
class AgreementSummary:
    measure: str  # FLEISS | EXACT_MATCH
    pair_measure: str  # COHEN | EXACT_MATCH
    value: float | None  # None until some item has two labels
    items: int
    pairwise: list[PairAgreement]


def _current(
    job_id: int | str | None, user: str, store: Store | None
) -> tuple[Job, dict[int, list[LabelRecord]]]:
    accounts.require_role(user, REVIEWER, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    return job, current_by_item(job, store, include_anonymous=True)


def job_agreement(job_id: int | str | None, user: str, *, store: Store | None = None) -> AgreementSummary:
    """Fleiss' kappa (label tasks) or the exact-match rate (free text), over items labeled by the full
    overlap; and Cohen's kappa (or match rate) for every pair of annotators over the items they share."""
    job, labels = _current(job_id, user, store)
    full = [[normalize(s.value) for s in current] for current in labels.values() if len(current) >= 2]
    categorical = table.get(job.task).categorical
    value: float | None = None
    if categorical:
        sizes = Counter(len(group) for group in full)
        if sizes:
            size = sizes.most_common(1)[0][0]
            full = [group for group in full if len(group) == size]
            value = agreement.fleiss_kappa_from_labels(full)
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
        pairwise.append(PairAgreement(first, second, len(shared), score))
    return AgreementSummary(
        FLEISS if categorical else EXACT_MATCH,
        COHEN if categorical else EXACT_MATCH,
        value,
        len(full),
        pairwise,
    )


def annotator_progress(
    job_id: int | str | None, user: str, *, store: Store | None = None
) -> list[tuple[str, int]]:
    """(annotator, items labeled) for a job."""
    _, labels = _current(job_id, user, store)
    return sorted(Counter(s.user for current in labels.values() for s in current).items())


def label_distribution(
    job_id: int | str | None, user: str, *, top: int = 15, store: Store | None = None
) -> list[tuple[str, int]]:
    """How often each label (or answer) was given, most frequent first. A free-text task (captions), where
    nearly every label is unique, gets how long its labels are instead: labels per length band in words."""
    job, labels = _current(job_id, user, store)
    values = [normalize(s.value) for current in labels.values() for s in current]
    if not is_free_text(job):
        return Counter(values).most_common(top)
    bands = Counter(_length_band(len(value.split())) for value in values)
    return [(band, bands[band]) for band in LENGTH_BANDS if bands[band]]


def is_free_text(job: Job) -> bool:
    """A task whose labels are free text of their own (captions), not picked or short answers to a prompt."""
    spec = table.get(job.task)
    return not spec.categorical and spec.prompt is None


LENGTH_BANDS = ("1-3 words", "4-7 words", "8-12 words", "13+ words")


def _length_band(words: int) -> str:
    return LENGTH_BANDS[0 if words <= 3 else 1 if words <= 7 else 2 if words <= 12 else 3]


@dataclass(frozen=True)
class JobSummary:
    job: Job
    items: int
    complete: int
    reviewed: int
    disagreements: int


def job_summaries(user: str, *, store: Store | None = None) -> list[JobSummary]:
    accounts.require_role(user, REVIEWER, store=store)
    store = store_or_default(store)
    result = []
    for job in store.jobs():
        labels = current_by_item(job, store, include_anonymous=True)
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


@dataclass(frozen=True)
class PrefillMatch:
    """How often one model version's pre-fill of a job's items was the item's final label."""

    job: Job
    model: str
    version: str  # the model version that made the pre-fill ("base": no fine-tuned one)
    settled: int  # items with a final label (reviewed, or agreed at full overlap) it pre-filled
    matched: int

    @property
    def rate(self) -> float:
        return self.matched / self.settled if self.settled else 0.0


def prefill_matches(
    user: str, *, job_id: int | str | None = None, store: Store | None = None
) -> list[PrefillMatch]:
    """Per job (or for one) and per model version that pre-filled its items, in the order the versions
    first pre-filled: the settled items, and on how many the pre-fill was the final label."""
    accounts.require_role(user, REVIEWER, store=store)
    store = store_or_default(store)
    chosen = [get_job(job_id, store)] if job_id not in (None, "") else store.jobs()
    result = []
    for job in chosen:
        spec = table.get(job.task)
        counts: dict[
            tuple[str, str], list[int]
        ] = {}  # (model, version) -> [first prediction, settled, matched]
        for label in final_labels(job, store, include_anonymous=True):
            prediction = store.prediction(label.prediction_id) if label.prediction_id is not None else None
            if prediction is None:
                continue
            tally = counts.setdefault((label.model_name, label.model_version), [prediction.id, 0, 0])
            tally[0] = min(tally[0], prediction.id)
            tally[1] += 1
            tally[2] += normalize(spec.prefill_value(prediction)) == normalize(label.value)
        for (model, version), (_, settled, matched) in sorted(counts.items(), key=lambda kv: kv[1][0]):
            result.append(PrefillMatch(job, model, version, settled, matched))
    return result
