"""Training examples for fine-tuning runs, read through the one labels reader (`data.labels`).

`text_targets(store, task)` (caption, VQA) yields each corrected prediction with its latest correction as
the target. `clip_targets(store, job_id)` (video) yields one label per clip: the latest correction of the
clip's predictions, overridden by the reviewed or agreed label of a labeling job when one is named.
`relevance_judgements(store)` (retrieval) are the Retrieval tab's judgements.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mmdemo.data import Store, labels
from mmdemo.data.labels import Label
from mmdemo.tasks import table


@dataclass(frozen=True)
class TextTarget:
    """One training pair: an image, the prompt (the question for VQA, empty for captions), the target."""

    image_path: str
    media_id: str
    prompt: str
    target: str
    prediction_id: int


def text_targets(store: Store, task: str) -> Iterator[TextTarget]:
    """Corrected `task` predictions whose image is still on disk, with their latest correction as target."""
    needs_prompt = table.get(task).prompt is not None
    for label in labels.read(store, task, sources=("correction",)):
        media = store.media(label.media_id)
        if media is None or not Path(media.path).is_file() or (needs_prompt and not label.prompt):
            continue
        yield TextTarget(media.path, media.id, label.prompt, label.value, label.prediction_id)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClipTarget:
    """One labelled clip for the video head: the file, its media id (the split's item), the label, and
    where the label came from ("correction #12", "job 3, reviewed")."""

    clip_path: str
    media_id: str
    label: str
    source: str


def clip_targets(store: Store, job_id: int | None = None) -> list[ClipTarget]:
    """One target per clip still on disk: corrected video predictions, then a labeling job's reviewed or
    agreed labels (as the export reads them), which win for the same clip."""
    by_media: dict[str, ClipTarget] = {}
    for label in labels.read(store, "video", sources=("correction",)):  # oldest first: a later one wins
        by_media[label.media_id] = ClipTarget("", label.media_id, label.value, f"correction #{label.id}")
    if job_id is not None:
        [job] = labels.jobs_of(store, "video", [job_id])
        for final in labels.final_labels(job, store):
            by_media[final.media_id] = ClipTarget(
                "", final.media_id, final.value, f"job {job.id}, {final.settled}"
            )
    targets = []
    for media_id, target in by_media.items():
        media = store.media(media_id)
        if media is not None and Path(media.path).is_file():
            targets.append(ClipTarget(media.path, media_id, target.label.strip(), target.source))
    return targets


def relevance_judgements(store: Store) -> list[Label]:
    """Every relevance judgement, oldest first (a later one of the same result supersedes)."""
    return list(labels.read(store, "retrieval", sources=("judgement",)))
