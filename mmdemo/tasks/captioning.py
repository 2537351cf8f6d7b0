"""Captioning as plain functions: check the images, caption them in batches, record and correct captions."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.data import Store, default_store
from mmdemo.media.files import ImageSource
from mmdemo.media.images import remember_images
from mmdemo.serving.models.base import CaptionOptions, ModelInfo
from mmdemo.serving.registry import Registry
from mmdemo.tasks.corrections import CONFIRMED, corrected_text, prediction_to_correct

TASK = "caption"
STRATEGIES = ("beam", "sample")
MAX_LENGTH_LIMIT = 75  # new tokens; BLIP's captions are short, and long generation is slow on a CPU
MAX_BEAMS = 8
MAX_PREFIX_CHARS = 200
MAX_CAPTION_CHARS = 1000  # a correction longer than this is almost surely a paste accident


@dataclass
class CaptionResult:
    name: str  # the image's file name, or "image"
    caption: str
    model: ModelInfo
    latency_ms: float  # the whole batch this image was captioned in
    prediction_id: int
    media_id: str
    path: Path | None = None  # the file it was read from, if any
    notes: list[str] = field(default_factory=list)

    @property
    def model_label(self) -> str:
        return model_label(self.model)


def model_label(model: ModelInfo) -> str:
    """Model name · profile · device, with "(baseline)" for the lite stand-ins."""
    label = f"{model.name} · {model.profile} · {model.device}"
    return f"{label} (baseline)" if model.baseline and "baseline" not in model.name else label


def caption_options(
    strategy: str = "beam",
    num_beams: int = 3,
    max_length: int = 30,
    prefix: str = "",
    temperature: float = 1.0,
    top_p: float = 0.9,
    seed: int | None = None,
) -> tuple[CaptionOptions, list[str]]:
    """Checked decoding options, and notes about what was adjusted. Raises `ValueError` on nonsense.

    Without a seed, sampling picks one at random; it is recorded with the prediction, so a sampled caption
    can be reproduced."""
    if strategy not in STRATEGIES:
        raise ValueError(f"decoding strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if not 1 <= int(max_length) <= MAX_LENGTH_LIMIT:
        raise ValueError(f"max length must be between 1 and {MAX_LENGTH_LIMIT} tokens, not {max_length}")
    if not 1 <= int(num_beams) <= MAX_BEAMS:
        raise ValueError(f"beams must be between 1 and {MAX_BEAMS}, not {num_beams}")
    if not 0 < float(temperature) <= 5 or not 0 < float(top_p) <= 1:
        raise ValueError("temperature must be in (0, 5] and top-p in (0, 1]")
    notes = []
    prefix = " ".join((prefix or "").split())
    if len(prefix) > MAX_PREFIX_CHARS:
        prefix = prefix[:MAX_PREFIX_CHARS].rstrip()
        notes.append(f"the text prefix was cut to its first {MAX_PREFIX_CHARS} characters")
    options = CaptionOptions(
        strategy=strategy,
        num_beams=int(num_beams),
        max_length=int(max_length),
        prefix=prefix,
        temperature=float(temperature),
        top_p=float(top_p),
        seed=seed if seed is not None else random.randrange(2**31),
    )
    return options, notes


def caption_images(
    sources: Sequence[ImageSource],
    options: CaptionOptions | None = None,
    *,
    user: str | None = None,
    skip_bad: bool = False,
    registry: Registry,
    store: Store | None = None,
) -> tuple[list[CaptionResult], list[str]]:
    """Caption images in one batched model call and record each caption as a prediction.

    Returns the results in input order and a message per skipped image (only with `skip_bad`; otherwise
    the first unusable image raises `MediaError`)."""
    store = store or default_store()
    options = options or CaptionOptions()
    inputs, skipped = remember_images(sources, store, skip_bad=skip_bad)
    captioner = registry.get(TASK)
    started = time.perf_counter()
    captions = captioner.caption([item.image for item in inputs], options)
    latency_ms = (time.perf_counter() - started) * 1000
    params = {**asdict(options), "batch_size": len(inputs)}
    results = []
    for item, caption in zip(inputs, captions, strict=True):
        # how sure the model was (the queue's uncertainty order): kept beside the plain-text output
        logprob = getattr(caption, "logprob", None)
        prediction = store.record_prediction(
            TASK,
            media_id=item.media.id,
            input={"name": item.name, "prefix": options.prefix, "notes": item.notes},
            output=str(caption),
            model=captioner.info,
            params=params if logprob is None else {**params, "logprob": round(float(logprob), 6)},
            latency_ms=latency_ms / len(inputs),
            user=user,
        )
        results.append(
            CaptionResult(
                name=item.name,
                caption=str(caption),
                model=captioner.info,
                latency_ms=latency_ms,
                prediction_id=prediction.id,
                media_id=item.media.id,
                path=item.path,
                notes=item.notes,
            )
        )
    return results, skipped


def caption_image(
    source: ImageSource | None,
    options: CaptionOptions | None = None,
    *,
    user: str | None = None,
    registry: Registry,
    store: Store | None = None,
) -> CaptionResult:
    results, _ = caption_images(
        [source] if source is not None else [], options, user=user, registry=registry, store=store
    )
    return results[0]


def correct_caption(
    prediction_id: int | None, caption: str, *, user: str | None = None, store: Store | None = None
) -> int:
    """Append a corrected caption to a caption prediction `user` made (or a reviewer); returns the
    correction's id."""
    store = store or default_store()
    prediction = prediction_to_correct(store, prediction_id, TASK, "caption an image first", user)
    caption = corrected_text(caption, "caption", MAX_CAPTION_CHARS)
    note = CONFIRMED if caption == prediction.output else None
    return store.add_correction(prediction.id, caption, user=user, note=note).id


def save_changed_captions(
    rows: Sequence[Sequence[Any]], *, user: str | None = None, store: Store | None = None
) -> list[int]:
    """Corrections for the (prediction id, caption) rows whose caption differs from what is stored now.

    Every row is checked before any is saved, so one bad edit saves nothing."""
    store = store or default_store()
    changed: list[tuple[int, str]] = []
    for prediction_id, caption in rows:
        if prediction_id in (None, ""):
            continue
        prediction = prediction_to_correct(store, prediction_id, TASK, "caption images first", user)
        latest = store.latest_correction(prediction.id)
        text = corrected_text(str(caption or ""), "caption", MAX_CAPTION_CHARS)
        if text != (latest.output if latest else prediction.output):
            changed.append((prediction.id, text))
    return [correct_caption(prediction_id, text, user=user, store=store) for prediction_id, text in changed]
