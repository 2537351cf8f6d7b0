"""Training pairs for fine-tuning runs, read from the store.

`text_targets(store, task)` (caption, VQA) yields each corrected prediction with its latest correction as
the target. `clip_targets(store, job_id)` (video) yields one label per clip: the latest correction of the
clip's predictions, overridden by the reviewed or agreed label of a labeling job when one is named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo import labeling
from mmdemo.data import Store

TEXT_KEYS = ("answer", "caption", "text", "label")


@dataclass(frozen=True)
class TextTarget:
    """One training pair: an image, the prompt (the question for VQA, empty for captions), the target."""

    image_path: str
    media_id: str
    prompt: str
    target: str
    prediction_id: int


def output_text(output: Any) -> str:
    """The text of a stored output or correction: a string, or the answer/caption field of a dict."""
    if isinstance(output, str):
        return output.strip()
    if isinstance(output, dict):
        for key in TEXT_KEYS:
            if isinstance(output.get(key), str):
                return output[key].strip()
    return ""


def question_text(input_: Any) -> str:
    if isinstance(input_, str):
        return input_.strip()
    if isinstance(input_, dict) and isinstance(input_.get("question"), str):
        return input_["question"].strip()
    return ""


def text_targets(store: Store, task: str) -> Iterator[TextTarget]:
    """Corrected `task` predictions whose image is still on disk, with their latest correction as target."""
    for prediction in store.predictions(task):
        correction = store.latest_correction(prediction.id)
        if correction is None or prediction.media_id is None:
            continue
        target = output_text(correction.output)
        media = store.media(prediction.media_id)
        prompt = question_text(prediction.input) if task == "vqa" else ""
        if not target or media is None or not Path(media.path).is_file() or (task == "vqa" and not prompt):
            continue
        yield TextTarget(media.path, media.id, prompt, target, prediction.id)


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
    agreed labels (`labeling.final_labels`, as the export reads them), which win for the same clip."""
    by_media: dict[str, ClipTarget] = {}
    for prediction in store.predictions("video"):  # oldest first: a later correction wins
        correction = store.latest_correction(prediction.id)
        label = output_text(correction.output) if correction is not None else ""
        if label and prediction.media_id is not None:
            by_media[prediction.media_id] = ClipTarget(
                "", prediction.media_id, label, f"correction #{correction.id}"
            )  # type: ignore[union-attr]
    if job_id is not None:
        job = store.job(job_id)
        if job is None or job.task != "video":
            raise ValueError(f"no labeling job #{job_id} of task video")
        for final in labeling.final_labels(job, store=store):
            by_media[final.item.media_id] = ClipTarget(
                "", final.item.media_id, final.value, f"job {job.id}, {final.how}"
            )
    targets = []
    for media_id, target in by_media.items():
        media = store.media(media_id)
        if media is not None and Path(media.path).is_file():
            targets.append(ClipTarget(media.path, media_id, target.label.strip(), target.source))
    return targets
