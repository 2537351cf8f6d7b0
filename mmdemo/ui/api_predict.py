"""The public API's model endpoints (caption, ask, classify a clip) and their corrections, over plain data."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.services import Services
from mmdemo.serving.models.base import ModelInfo
from mmdemo.tasks import captioning, vqa
from mmdemo.tasks import video_classify as videos
from mmdemo.tasks.fusion import AUDIO, DEFAULT_WEIGHTS, VISUAL
from mmdemo.tasks.video_classify import DEFAULT_FRAMES, DEMO_LABELS
from mmdemo.ui.common import visitor


def model_dict(model: ModelInfo | None) -> dict[str, Any]:
    if model is None:
        return {}
    return {
        "name": model.name,
        "version": model.version,
        "profile": model.profile,
        "device": model.device,
        "baseline": bool(model.baseline),
    }


def caption(
    services: Services,
    image: str | None,
    strategy: str = "beam",
    beams: int = 3,
    max_length: int = 30,
    temperature: float = 1.0,
    prefix: str = "",
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """Caption one image; the prediction is stored, so it can be corrected with correct_caption.

    Parameters:
        image: the image file
        strategy: "beam" (the likeliest caption) or "sample" (a different caption each time, seeded)
        beams: number of beams for beam search
        max_length: maximum caption length in tokens
        temperature: sampling temperature
        prefix: text the caption must start with (conditional captioning)
    Returns:
        {"caption", "prediction_id", "model": {...}, "latency_ms", "notes"}
    """
    options, notes = captioning.caption_options(
        strategy=strategy,
        num_beams=int(beams),
        max_length=int(max_length),
        prefix=prefix or "",
        temperature=float(temperature),
    )
    result = captioning.caption_image(image, options, user=visitor(request), registry=services.registry)
    return {
        "caption": result.caption,
        "prediction_id": result.prediction_id,
        "model": model_dict(result.model),
        "latency_ms": round(result.latency_ms, 1),
        "notes": [*notes, *result.notes],
    }


def caption_batch(
    services: Services,
    images: list[str] | None,
    strategy: str = "beam",
    beams: int = 3,
    max_length: int = 30,
    temperature: float = 1.0,
    prefix: str = "",
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """Caption several images in one batched model call; unreadable files are skipped with a message.

    Parameters:
        images: the image files
        strategy: "beam" or "sample"
        beams: number of beams for beam search
        max_length: maximum caption length in tokens
        temperature: sampling temperature
        prefix: text each caption must start with
    Returns:
        {"captions": [{"name", "caption", "prediction_id"}], "skipped", "model": {...}, "notes"}
    """
    options, notes = captioning.caption_options(
        strategy=strategy,
        num_beams=int(beams),
        max_length=int(max_length),
        prefix=prefix or "",
        temperature=float(temperature),
    )
    results, skipped = captioning.caption_images(
        [str(path) for path in images or []],
        options,
        user=visitor(request),
        skip_bad=True,
        registry=services.registry,
    )
    return {
        "captions": [
            {"name": r.name, "caption": r.caption, "prediction_id": r.prediction_id} for r in results
        ],
        "skipped": skipped,
        "model": model_dict(results[0].model),
        "notes": [*notes, *(f"{r.name}: {note}" for r in results for note in r.notes)],
    }


def ask(
    services: Services, image: str | None, question: str, request: gr.Request | None = None
) -> dict[str, Any]:
    """Answer a question about an image (visual question answering); the prediction is stored.

    Parameters:
        image: the image file
        question: the question, e.g. "Is there a cat?"
    Returns:
        {"question", "answer", "top": [{"answer", "score"}], "prediction_id", "model": {...}, "notes"}
    """
    result = vqa.ask(image, question, user=visitor(request), registry=services.registry)
    return {
        "question": result.question,
        "answer": result.answer,
        "top": [{"answer": answer, "score": round(score, 6)} for answer, score in result.top],
        "prediction_id": result.prediction_id,
        "model": model_dict(result.model),
        "latency_ms": round(result.latency_ms, 1),
        "notes": result.notes,
    }


# -- video -------------------------------------------------------------------------------------------------
def classify_video(
    services: Services,
    clip: str | None,
    labels: str = "\n".join(DEMO_LABELS),
    label_set: str = "",
    visual_weight: float = DEFAULT_WEIGHTS[VISUAL],
    audio_weight: float = DEFAULT_WEIGHTS[AUDIO],
    frames: int = DEFAULT_FRAMES,
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """Classify a video clip (or a photo, as a one-frame clip) against labels, from its frames and sound.

    Parameters:
        clip: the video file
        labels: the labels, one per line or comma-separated (ignored when label_set is given)
        label_set: the name of a saved label set to use instead of labels
        visual_weight: the weight of the frames' scores (0 leaves them out)
        audio_weight: the weight of the sound's scores (0 leaves it out)
        frames: how many frames to sample
    Returns:
        {"fused": [{"label", "score"}], "visual": [...], "audio": [...], "prediction_id", "timestamps",
        "weights", "model": {...}, "notes"}
    """
    names = videos.load_label_set(label_set) if (label_set or "").strip() else videos.labels_from_text(labels)
    result = videos.classify_video(
        clip,
        names,
        {VISUAL: float(visual_weight), AUDIO: float(audio_weight)},
        n_frames=int(frames or DEFAULT_FRAMES),
        user=visitor(request),
        registry=services.registry,
    )
    return {
        **result.as_json(),
        "prediction_id": result.prediction_id,
        "timestamps": result.timestamps,
        "weights": result.weights,
        "model": model_dict(result.model),
        "notes": result.notes,
    }


# -- corrections -------------------------------------------------------------------------------------------
def correct_caption(prediction_id: int | None, caption: str, request: gr.Request) -> dict[str, Any]:
    """Store the corrected caption of a caption prediction.

    Parameters:
        prediction_id: the prediction_id that caption returned
        caption: the right caption
    Returns:
        {"correction_id", "prediction_id"}
    """
    correction_id = captioning.correct_caption(prediction_id, caption, user=visitor(request))
    return {"correction_id": correction_id, "prediction_id": prediction_id}


def correct_answer(prediction_id: int | None, answer: str, request: gr.Request) -> dict[str, Any]:
    """Store the corrected answer of a VQA prediction.

    Parameters:
        prediction_id: the prediction_id that ask returned
        answer: the right answer
    Returns:
        {"correction_id", "prediction_id"}
    """
    correction_id = vqa.correct_answer(prediction_id, answer, user=visitor(request))
    return {"correction_id": correction_id, "prediction_id": prediction_id}


def correct_video_label(prediction_id: int | None, label: str, request: gr.Request) -> dict[str, Any]:
    """Store the right label of a video classification (one of its labels, or a new one).

    Parameters:
        prediction_id: the prediction_id that classify_video returned
        label: the right label
    Returns:
        {"correction_id", "prediction_id", "label", "in_label_set"}
    """
    correction = videos.correct_video(prediction_id, label, visitor(request))
    return {
        "correction_id": correction.id,
        "prediction_id": correction.prediction_id,
        "label": correction.output["label"],
        "in_label_set": correction.output["in_label_set"],
    }
