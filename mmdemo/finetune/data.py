"""Training examples for fine-tuning runs, read through the one labels reader (`data.labels`).

Every run learns from the same labels, picked by a `LabelSelection`:
- tab corrections, owner-checked as far as the data allows: a correction by the prediction's own user, of
  a prediction nobody owns (made anonymously), or by a reviewer or admin; relevance judgements (retrieval);
- labeling jobs' final labels: reviewed, or agreed at full overlap (`include_unreviewed` adds the majority
  label of the other labeled items, as export has it); `job_ids` restricts which jobs are read;
- anonymous labels only with `include_anonymous`, the same rule as export.

Each example keeps where its label came from and how settled it is (`origin`), so both are part of the
run's data hash and report. Retrieval jobs' relevant / not-relevant labels become positives / hard
negatives exactly like judgements.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mmdemo.data import Job, Store, labels
from mmdemo.data.labels import Label
from mmdemo.tasks import table

RETRIEVAL_INDEX = "default"  # the index a retrieval job's items are judged in when its source names none


@dataclass(frozen=True)
class LabelSelection:
    """Which labels a run reads: the shared run options `--job`, `--include-unreviewed`,
    `--include-anonymous`."""

    job_ids: tuple[int, ...] | None = None  # None: every job of the task
    include_unreviewed: bool = False
    include_anonymous: bool = False

    @classmethod
    def of(cls, config: Any) -> LabelSelection:
        """The selection a `RunConfig` names."""
        jobs = getattr(config, "job_ids", None)
        return cls(
            job_ids=tuple(int(j) for j in jobs) if jobs else None,
            include_unreviewed=bool(getattr(config, "include_unreviewed", False)),
            include_anonymous=bool(getattr(config, "include_anonymous", False)),
        )


DEFAULT_SELECTION = LabelSelection()  # every job; settled, named labels only


def origin(label: Label) -> str:
    """Where a label came from and how settled it is: "correction, single", "job 3, reviewed"."""
    where = f"job {label.job_id}" if label.job_id is not None else label.source
    return f"{where}, {label.settled}"


def _job_index(job: Job) -> str:
    """The index a retrieval job's items were found in (its source says "index NAME" when it had one)."""
    found = re.search(r"index (\S+)$", job.source or "")
    return found.group(1) if found else RETRIEVAL_INDEX


def _as_judgement(label: Label, job: Job) -> Label:
    """A retrieval job's label in a judgement's shape: the item's prompt is the text query, the job's first
    label means relevant."""
    relevant, not_relevant = table.get("retrieval").default_labels
    value = relevant if job.labels and label.value == job.labels[0] else not_relevant
    return replace(label, value=value, index_name=_job_index(job))


def training_labels(store: Store, task: str, selection: LabelSelection = DEFAULT_SELECTION) -> list[Label]:
    """Every label a `task` run learns from: tab labels first (oldest first), then jobs' final labels."""
    spec = table.get(task)
    loose: Iterable[Label] = labels.read(
        store,
        spec.name,
        sources=[s for s in ("correction", "judgement") if s in spec.label_sources],
        include_anonymous=selection.include_anonymous,
    )
    kept = list(loose)  # the reader keeps only corrections by the prediction's owner or a reviewer/admin
    for job in labels.jobs_of(store, spec.name, selection.job_ids):
        finals = labels.final_labels(
            job,
            store,
            include_anonymous=selection.include_anonymous,
            include_unreviewed=selection.include_unreviewed,
        )
        kept.extend(_as_judgement(f, job) if spec.name == "retrieval" else f for f in finals)
    return kept


@dataclass(frozen=True)
class TextTarget:
    """One training pair: an image, the prompt (the question for VQA, empty for captions), the target, and
    the label's origin ("correction, single", "job 2, reviewed")."""

    image_path: str
    media_id: str
    prompt: str
    target: str
    prediction_id: int | None
    origin: str = "correction, single"


def text_targets(
    store: Store, task: str, selection: LabelSelection = DEFAULT_SELECTION
) -> Iterator[TextTarget]:
    """Caption/VQA labels whose image is still on disk: corrections' latest text, jobs' final labels."""
    needs_prompt = table.get(task).prompt is not None
    for label in training_labels(store, task, selection):
        media = store.media(label.media_id)
        if media is None or not Path(media.path).is_file() or (needs_prompt and not label.prompt):
            continue
        yield TextTarget(media.path, media.id, label.prompt, label.value, label.prediction_id, origin(label))


@dataclass(frozen=True)
class ClipTarget:
    """One labelled clip for the video head: the file, its media id (the split's item), the label, and
    where the label came from ("correction #12", "job 3, reviewed")."""

    clip_path: str
    media_id: str
    label: str
    source: str

    @property
    def origin(self) -> str:
        return "correction, single" if self.source.startswith("correction") else self.source


def clip_targets(
    store: Store, job_id: int | None = None, selection: LabelSelection | None = None
) -> list[ClipTarget]:
    """One target per clip still on disk: corrected video predictions, then jobs' final labels, which win
    for the same clip. `job_id` alone (the older call) reads that one job."""
    if selection is None:
        selection = LabelSelection(job_ids=(job_id,) if job_id is not None else ())
    by_media: dict[str, ClipTarget] = {}
    for label in training_labels(store, "video", selection):  # corrections first: a job's label wins
        source = f"correction #{label.id}" if label.job_id is None else origin(label)
        by_media[label.media_id] = ClipTarget("", label.media_id, label.value, source)
    targets = []
    for media_id, target in by_media.items():
        media = store.media(media_id)
        if media is not None and Path(media.path).is_file():
            targets.append(ClipTarget(media.path, media_id, target.label.strip(), target.source))
    return targets


def relevance_labels(store: Store, selection: LabelSelection = DEFAULT_SELECTION) -> list[Label]:
    """Relevance judgements (oldest first; a later one of the same result supersedes), then retrieval jobs'
    final labels in a judgement's shape."""
    return training_labels(store, "retrieval", selection)


def relevance_judgements(store: Store) -> list[Label]:
    """Every relevance judgement, oldest first (a later one of the same result supersedes)."""
    return list(labels.read(store, "retrieval", sources=("judgement",)))
