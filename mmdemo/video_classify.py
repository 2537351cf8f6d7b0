"""Zero-shot video classification from frames and sound, fused with user-set weights, with corrections.

Frames are scored against "a photo of {label}" by the active image–text embedder (CLIP in full, ConSE in
lite); sound windows against "the sound of {label}" by CLAP where the profile has it. The lite audio
model (librosa features) cannot score labels until a trained head exists, so its weight is ignored.
Every classification is stored as a prediction with its provenance; corrections are appended to it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo import config, fusion
from mmdemo.fusion import AUDIO, VISUAL
from mmdemo.media import MediaError, file_hash
from mmdemo.registry import Registry, default_registry
from mmdemo.store import Correction, Store, StoreError, default_store
from mmdemo.video import SampledClip, sample_clip

TASK = "video"
DEFAULT_FRAMES = 8
TOP_K = 5
MAX_LABELS = 50
MAX_LABEL_CHARS = 80
VISUAL_PROMPT = "a photo of {}"
AUDIO_PROMPT = "the sound of {}"
# Cosine similarities become logits at CLIP's scale; ConSE's sentence-space cosines are spread wider.
SIMILARITY_SCALE = {"conse": 20.0}
DEFAULT_SCALE = 100.0
DEMO_LABEL_SET = "demo"
DEMO_LABELS = [
    "a cup of coffee",
    "a clock",
    "a rocket",
    "a cat",
    "a camera",
    "a horse",
    "a flower",
    "a motorcycle",
]
LITE_AUDIO_NOTE = (
    "lite: the audio model (librosa features) needs a trained head (fine-tuning) before it can score "
    "labels, so the audio weight is ignored"
)


@dataclass
class ModalityScores:
    """One modality's view: log-probabilities over the labels at each of its time steps."""

    times: list[float]
    log_probs: np.ndarray  # time steps × labels

    @property
    def overall(self) -> np.ndarray:
        return fusion.log_softmax(fusion.aggregate_over_time(self.log_probs))


@dataclass
class VideoClassification:
    labels: list[str]
    fused: list[tuple[str, float]]  # every label, best first
    visual: list[tuple[str, float]]  # empty when the modality did not score
    audio: list[tuple[str, float]]
    timestamps: list[float]  # the sampled times (frames, or sound windows for audio-only files)
    step_scores: np.ndarray  # fused probabilities at each sampled time (times × labels)
    weights: dict[str, float]  # the weights applied, after dropping modalities that did not score
    duration_s: float
    notes: list[str] = field(default_factory=list)
    prediction_id: int | None = None

    def top(self, which: str = "fused", k: int = TOP_K) -> list[tuple[str, float]]:
        return getattr(self, which)[:k]

    def as_json(self, k: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """`{"fused": [{"label", "score"}], "visual": [...], "audio": [...]}`, best first."""
        return {
            name: [{"label": label, "score": round(score, 6)} for label, score in getattr(self, name)[:k]]
            for name in ("fused", VISUAL, AUDIO)
        }


# -- labels -----------------------------------------------------------------------------------------
def clean_labels(labels: Sequence[str]) -> list[str]:
    """Labels stripped, blanks and repeats dropped (order kept); at least two, each of sane length."""
    cleaned = list(dict.fromkeys(label.strip() for label in labels if label and label.strip()))
    if len(cleaned) < 2:
        raise ValueError("give at least two different labels to choose between")
    if len(cleaned) > MAX_LABELS:
        raise ValueError(f"{len(cleaned)} labels is more than the {MAX_LABELS} allowed")
    if too_long := [label for label in cleaned if len(label) > MAX_LABEL_CHARS]:
        raise ValueError(f"label {too_long[0][:30]!r}… is longer than {MAX_LABEL_CHARS} characters")
    return cleaned


def labels_from_text(text: str | None) -> list[str]:
    return clean_labels((text or "").splitlines())


def save_label_set(name: str, labels: Sequence[str], user: str | None = None) -> list[str]:
    return default_store().save_label_set(name, clean_labels(labels), user=user)


def load_label_set(name: str) -> list[str]:
    if name == DEMO_LABEL_SET and default_store().label_set(name) is None:
        return list(DEMO_LABELS)
    labels = default_store().label_set(name)
    if labels is None:
        raise StoreError(f"no label set named {name!r}")
    return labels


def label_set_names() -> list[str]:
    return list(dict.fromkeys([DEMO_LABEL_SET, *default_store().label_set_names()]))


# -- scoring ----------------------------------------------------------------------------------------
def _zero_shot(
    model: Any, family: str, encoded: np.ndarray, labels: list[str], template: str, times: list[float]
) -> ModalityScores:
    """Log-probabilities over the labels from cosine similarities to each label's prompt."""
    prompts = model.encode_texts([template.format(label) for label in labels])
    logits = SIMILARITY_SCALE.get(family, DEFAULT_SCALE) * (encoded @ prompts.T)
    return ModalityScores(list(times), fusion.log_softmax(logits))


def score_frames(clip: SampledClip, labels: list[str], registry: Registry) -> ModalityScores | None:
    if not clip.frames:
        return None
    embedder = registry.get("embed")
    family = registry.choose("embed").spec.family
    return _zero_shot(
        embedder, family, embedder.encode_images(clip.frames), labels, VISUAL_PROMPT, clip.timestamps
    )


def score_sound(
    clip: SampledClip, labels: list[str], registry: Registry, notes: list[str]
) -> ModalityScores | None:
    if not clip.audio:
        return None
    model = registry.get("audio")
    if not model.zero_shot:
        model.encode_audio(clip.audio)  # the features a trained head will read
        notes.append(LITE_AUDIO_NOTE)
        return None
    family = registry.choose("audio").spec.family
    return _zero_shot(
        model, family, model.encode_audio(clip.audio), labels, AUDIO_PROMPT, clip.audio_timestamps
    )


def _audio_rate(registry: Registry) -> int:
    return int(registry.get("audio").sample_rate)


# -- classification -------------------------------------------------------------------------------
def keep_clip(path: Path) -> Path:
    """A copy of an uploaded clip in the data folder, named by its content, so training can find it."""
    target = config.data_dir() / "uploads" / "video" / f"{file_hash(path)}{path.suffix.lower()}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        shutil.copyfile(path, partial)
        os.replace(partial, target)  # two uploads of the same clip never see a half-written copy
    return target


def classify_video(
    path: str | Path | None,
    labels: Sequence[str],
    weights: Mapping[str, float] | None = None,
    n_frames: int = DEFAULT_FRAMES,
    user: str | None = None,
    *,
    registry: Registry | None = None,
    store: Store | None = None,
    record: bool = True,
) -> VideoClassification:
    """Classify a clip against `labels` from its frames and its sound; store the prediction."""
    if path is None or not str(path).strip():
        raise MediaError("no video given: upload a clip, or pick an example")
    path = Path(path)
    labels = clean_labels(labels)
    requested = dict(fusion.DEFAULT_WEIGHTS if weights is None else weights)
    registry = registry or default_registry()
    started = time.perf_counter()
    wants_sound = requested.get(AUDIO, 0.0) > 0
    clip = sample_clip(path, int(n_frames), _audio_rate(registry) if wants_sound else None)
    notes = list(clip.notes)
    visual = score_frames(clip, labels, registry)
    audio = score_sound(clip, labels, registry, notes) if wants_sound else None
    by_modality = {VISUAL: visual, AUDIO: audio}
    if all(scores is None for scores in by_modality.values()):
        raise MediaError(
            f"{path.name}: nothing in this clip can be scored here ({'; '.join(notes)}); "
            "raise the visual weight, or use a clip with a video track"
        )
    try:
        applied = fusion.effective_weights(requested, [m for m, s in by_modality.items() if s is not None])
    except ValueError as error:
        raise ValueError("; ".join([str(error), *notes])) from None
    overall = {name: None if scores is None else scores.overall for name, scores in by_modality.items()}
    fused = fusion.fuse(overall, applied)
    times = visual.times if visual is not None else audio.times  # type: ignore[union-attr]
    step_scores = fusion.fuse_over_time(
        {n: None if s is None else (s.times, s.log_probs) for n, s in by_modality.items()}, applied, times
    )
    result = VideoClassification(
        labels=labels,
        fused=fusion.top_k(labels, fused, len(labels)),
        visual=[] if visual is None else fusion.top_k(labels, np.exp(overall[VISUAL]), len(labels)),
        audio=[] if audio is None else fusion.top_k(labels, np.exp(overall[AUDIO]), len(labels)),
        timestamps=list(times),
        step_scores=step_scores,
        weights=applied,
        duration_s=clip.info.duration_s,
        notes=notes,
    )
    if record:
        result.prediction_id = _record(
            result,
            clip,
            path,
            requested,
            by_modality,
            registry,
            store or default_store(),
            user,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    return result


def _rounded(matrix: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(matrix, np.float64), 5).tolist()


def _record(
    result: VideoClassification,
    clip: SampledClip,
    path: Path,
    requested: dict[str, float],
    by_modality: dict[str, ModalityScores | None],
    registry: Registry,
    store: Store,
    user: str | None,
    latency_ms: float,
) -> int:
    kept = keep_clip(path)
    media = store.add_media(
        kept,
        "video" if clip.info.has_video else "audio",
        width=clip.info.width,
        height=clip.info.height,
        duration_s=clip.info.duration_s,
    )
    models = {VISUAL: registry.info("embed") if clip.frames else None}
    models[AUDIO] = registry.info("audio") if by_modality[AUDIO] is not None or clip.audio else None
    per_modality = {
        name: {
            "model": asdict(models[name]) if models[name] else None,
            "times": scores.times,
            "step_log_probs": _rounded(scores.log_probs),
        }
        for name, scores in by_modality.items()
        if scores is not None
    }
    primary = models[VISUAL] or models[AUDIO]
    assert primary is not None
    prediction = store.record_prediction(
        TASK,
        media_id=media.id,
        input={"labels": result.labels, "file": path.name},
        output=result.as_json(),
        model=primary,
        params={
            "n_frames": len(clip.frames),
            "timestamps": clip.timestamps,
            "audio_timestamps": clip.audio_timestamps,
            "weights_requested": requested,
            "weights": result.weights,
            "prompts": {VISUAL: VISUAL_PROMPT, AUDIO: AUDIO_PROMPT},
            "models": {name: asdict(info) if info else None for name, info in models.items()},
            "scores": per_modality,
            "notes": result.notes,
        },
        latency_ms=latency_ms,
        user=user,
    )
    return prediction.id


def correct_video(
    prediction_id: int | None,
    label: str | None,
    user: str | None = None,
    note: str | None = None,
    *,
    store: Store | None = None,
) -> Correction:
    """Store the right label for a classified clip (one of its labels, or a new one)."""
    store = store or default_store()
    if prediction_id is None:
        raise ValueError("classify a clip first, then correct it")
    label = (label or "").strip()
    if not label:
        raise ValueError("pick the right label, or type a new one")
    if len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"a label may have at most {MAX_LABEL_CHARS} characters")
    prediction = store.prediction(int(prediction_id))
    if prediction is None or prediction.task != TASK:
        raise StoreError(f"no video prediction #{prediction_id} to correct")
    known = label in prediction.input["labels"]
    return store.add_correction(
        prediction.id, {"label": label, "in_label_set": known}, user=user, note=note or None
    )
