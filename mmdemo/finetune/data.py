"""Training pairs for caption and VQA runs, read from the store.

`text_targets(store, task)` is the one seam: today it yields each corrected prediction with its latest
correction as the target; reviewed labels from labeling sessions can be yielded from here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.store import Store

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
