"""Video classification from frames and sound, fused with user-set weights, with corrections.

Frames are scored against "a photo of {label}" by the active image–text embedder (CLIP in full, ConSE in
lite); sound windows against "the sound of {label}" by CLAP where the profile has it. The lite audio
model (librosa features) cannot score labels until a trained head exists, so its weight is ignored.
Once `mmdemo finetune video` has made an accepted version, its fusion head scores the same features
instead, whenever the labels asked for are the ones it learned (the registry swaps it in and out).
Every classification is stored as a prediction with its provenance; corrections are appended to it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo import accounts
from mmdemo.data import Correction, Store, StoreError, default_store
from mmdemo.data.label_sets import visible
from mmdemo.media.files import MediaError, is_image_path, keep_file, load_image
from mmdemo.media.images import media_folder
from mmdemo.media.video import ClipInfo, SampledClip, sample_clip
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.serving.models import fusion_head
from mmdemo.serving.models.base import ModelInfo
from mmdemo.serving.models.fusion_head import FusionHead, Head
from mmdemo.serving.registry import Registry, UnknownTask
from mmdemo.tasks import fusion
from mmdemo.tasks.corrections import CONFIRMED, corrected_text, prediction_to_correct
from mmdemo.tasks.fusion import AUDIO, VISUAL

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
    model: ModelInfo | None = None  # what made the prediction: a fine-tuned head, or the zero-shot embedder
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
    """Create a label set, or replace one `user` created (admins: any)."""
    accounts.require_write(user, "label sets")
    store = default_store()
    return store.save_label_set(
        name,
        clean_labels(labels),
        user=user,
        may_replace=lambda owner: accounts.require_label_set_owner(user, owner, visible(name), store=store),
    )


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
@dataclass
class ClipFeatures:
    """A clip's frozen features: one row per frame (the active embedder) and per sound window (the audio
    model). Zero-shot scoring and a trained head both read these."""

    visual: np.ndarray | None
    visual_times: list[float]
    audio: np.ndarray | None
    audio_times: list[float]

    def rows(self, modality: str) -> tuple[np.ndarray | None, list[float]]:
        return (self.visual, self.visual_times) if modality == VISUAL else (self.audio, self.audio_times)


def clip_features(clip: SampledClip, registry: Registry) -> ClipFeatures:
    visual = np.asarray(registry.get("embed").encode_images(clip.frames)) if clip.frames else None
    audio = np.asarray(registry.get("audio").encode_audio(clip.audio)) if clip.audio else None
    return ClipFeatures(visual, list(clip.timestamps), audio, list(clip.audio_timestamps))


def _zero_shot(
    model: Any, family: str, encoded: np.ndarray, labels: list[str], template: str, times: list[float]
) -> ModalityScores:
    """Log-probabilities over the labels from cosine similarities to each label's prompt."""
    prompts = model.encode_texts([template.format(label) for label in labels])
    logits = SIMILARITY_SCALE.get(family, DEFAULT_SCALE) * (encoded @ prompts.T)
    return ModalityScores(list(times), fusion.log_softmax(logits))


def zero_shot_scores(
    features: ClipFeatures, labels: list[str], registry: Registry, notes: list[str]
) -> dict[str, ModalityScores | None]:
    """Frames against "a photo of {label}", sound against "the sound of {label}" (where the audio model
    has a text side)."""
    scores: dict[str, ModalityScores | None] = {VISUAL: None, AUDIO: None}
    if features.visual is not None:
        scores[VISUAL] = _zero_shot(
            registry.get("embed"),
            registry.choose("embed").spec.family,
            features.visual,
            labels,
            VISUAL_PROMPT,
            features.visual_times,
        )
    if features.audio is not None:
        model = registry.get("audio")
        if not model.zero_shot:
            notes.append(LITE_AUDIO_NOTE)
        else:
            family = registry.choose("audio").spec.family
            scores[AUDIO] = _zero_shot(
                model, family, features.audio, labels, AUDIO_PROMPT, features.audio_times
            )
    return scores


def head_scores(
    head: FusionHead, features: ClipFeatures, labels: list[str]
) -> dict[str, ModalityScores | None]:
    """A trained head's log-probabilities per modality and time step, columns in the order of `labels`."""
    columns = [head.labels.index(label) for label in labels]
    scores: dict[str, ModalityScores | None] = {VISUAL: None, AUDIO: None}
    for modality in head.branches:
        rows, times = features.rows(modality)
        if rows is not None:
            scores[modality] = ModalityScores(
                list(times), fusion.log_softmax(head.logits(modality, rows)[:, columns])
            )
    return scores


def _requested_rows(features: ClipFeatures, requested: Mapping[str, float]) -> dict[str, Any]:
    """Each modality's (rows, times); a modality weighted 0 is masked, as a clip without it."""
    return {m: features.rows(m) if requested.get(m, 0.0) > 0 else (None, []) for m in fusion.MODALITIES}


def head_weights(head: Head, requested: Mapping[str, float]) -> dict[str, float]:
    """The head's learned fusion weights; a requested weight of 0 still leaves a modality out. A head that
    joins the modalities inside has no weights: the modalities it reads count alike (for the record)."""
    if not head.fusion_weights:
        return {m: float(m in head.modalities and requested.get(m, 0.0) > 0) for m in fusion.MODALITIES}
    return {
        m: head.fusion_weights.get(m, 0.0) if requested.get(m, 0.0) > 0 else 0.0 for m in fusion.MODALITIES
    }


def serving_head(registry: Registry, labels: list[str], notes: list[str]) -> Head | None:
    """The newest accepted fine-tuned head, if there is one that fits these labels and feature models;
    otherwise None, with a note saying why the prediction is zero-shot."""
    version = registry.active_version(TASK)
    if version is None:
        return None
    try:
        head = registry.get(TASK)
    except (UnknownTask, ModelUnavailable) as error:  # rolled back meanwhile, or its folder is gone
        notes.append(f"the fine-tuned head could not be loaded ({error}); zero-shot instead")
        return None
    fallback = f"so this prediction is zero-shot (fine-tuned head {head.info.version} not used)"
    if set(labels) != set(head.labels):
        notes.append(
            f"the fine-tuned head {head.info.version} was trained on the labels "
            f"{', '.join(head.labels)}; these labels differ, {fallback}"
        )
        return None
    for modality, name in head.feature_models.items():
        serving = registry.serving_spec("embed" if modality == VISUAL else "audio").name
        if serving != name:
            notes.append(
                f"the fine-tuned head reads {name} features but {serving} is active here, {fallback}"
            )
            return None
    return head


def _audio_rate(registry: Registry) -> int:
    return int(registry.get("audio").sample_rate)


# -- classification -------------------------------------------------------------------------------
def _sample(path: Path, n_frames: int, audio_rate: int | None) -> SampledClip:
    """The clip's frames and sound; a photo stands for a one-frame silent clip (a labeling job of video
    labels may hold photos)."""
    if not is_image_path(path):
        return sample_clip(path, n_frames, audio_rate)
    loaded = load_image(path)
    width, height = loaded.image.size
    info = ClipInfo(duration_s=0.0, has_video=True, has_audio=False, width=width, height=height)
    return SampledClip(info, [0.0], [loaded.image], notes=list(loaded.notes))


def _sound_can_vote(registry: Registry, head: Head | None) -> bool:
    """Whether reading the sound is worth it: a head with a sound branch, or a zero-shot audio model."""
    return AUDIO in head.modalities if head is not None else bool(registry.get("audio").zero_shot)


def sound_weight_unused(registry: Registry, labels: Sequence[str] = DEMO_LABELS) -> str | None:
    """Why the sound weight changes nothing here (for the UI to say), or None when the sound can vote.
    Loads no audio model: the librosa features score nothing without a fine-tuned head."""
    if registry.active_version(TASK) is not None:
        head = serving_head(registry, clean_labels(labels), [])
        if head is not None:
            return None if AUDIO in head.modalities else "the fine-tuned head has no sound branch"
    return LITE_AUDIO_NOTE if registry.serving_spec("audio").family == "librosa" else None


def classify_video(
    path: str | Path | None,
    labels: Sequence[str],
    weights: Mapping[str, float] | None = None,
    n_frames: int = DEFAULT_FRAMES,
    user: str | None = None,
    *,
    registry: Registry,
    store: Store | None = None,
    record: bool = True,
) -> VideoClassification:
    """Classify a clip against `labels` from its frames and its sound; store the prediction."""
    if path is None or not str(path).strip():
        raise MediaError("no video given: upload a clip, or pick an example")
    path = Path(path)
    labels = clean_labels(labels)
    requested = dict(fusion.DEFAULT_WEIGHTS if weights is None else weights)
    started = time.perf_counter()
    head_notes: list[str] = []
    head = serving_head(registry, labels, head_notes)
    wants_sound = requested.get(AUDIO, 0.0) > 0 and _sound_can_vote(registry, head)
    clip = _sample(path, int(n_frames), _audio_rate(registry) if wants_sound else None)
    notes = [*clip.notes, *head_notes]
    if requested.get(AUDIO, 0.0) > 0 and not wants_sound and head is None:
        notes.append(LITE_AUDIO_NOTE)  # the sound is not even read: nothing here could score it
    features = clip_features(clip, registry)
    joint = None
    if head is not None:
        if isinstance(head, FusionHead):
            by_modality = head_scores(head, features, labels)
        else:  # a head that joins the modalities: each one's view is the head with the other masked
            joint = fusion_head.joint_views(head, _requested_rows(features, requested), labels)
            by_modality = {m: None if v is None else ModalityScores(*v) for m, v in joint.views.items()}
        weights_used = head_weights(head, requested)
        notes.append(
            f"fine-tuned head {head.info.version}: {fusion_head.describe(head)}; "
            "a weight of 0 still leaves a modality out"
        )
        if unread := [fusion.SHOWN_AS[m] for m in fusion.MODALITIES if m not in head.modalities]:
            notes.append(f"the fine-tuned head was trained without {' or '.join(unread)}, so it ignores them")
    else:
        by_modality = zero_shot_scores(features, labels, registry, notes)
        weights_used = requested
    if all(scores is None for scores in by_modality.values()):
        raise MediaError(
            f"{path.name}: nothing in this clip can be scored here ({'; '.join(notes)}); "
            "raise the visual weight, or use a clip with a video track"
        )
    try:
        applied = fusion.effective_weights(weights_used, [m for m, s in by_modality.items() if s is not None])
    except ValueError as error:
        raise ValueError("; ".join([str(error), *notes])) from None
    overall = {name: None if scores is None else scores.overall for name, scores in by_modality.items()}
    fused = fusion.fuse(overall, applied) if joint is None else joint.fused
    visual, audio = by_modality[VISUAL], by_modality[AUDIO]
    times = visual.times if visual is not None else audio.times  # type: ignore[union-attr]
    step_scores = (
        fusion.fuse_over_time(
            {n: None if s is None else (s.times, s.log_probs) for n, s in by_modality.items()}, applied, times
        )
        if joint is None
        else joint.steps
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
        model=head.info if head is not None else registry.info("embed" if clip.frames else "audio"),
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
    kept = keep_file(path, media_folder(store))
    media = store.add_media(
        kept,
        "image" if is_image_path(path) else "video" if clip.info.has_video else "audio",
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
    primary = result.model or models[VISUAL] or models[AUDIO]
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
            "made_by": asdict(primary),  # the fine-tuned head's version, or the zero-shot embedder
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
    """Store the right label for a clip `user` classified (or a reviewer): one of its labels, or a new one."""
    store = store or default_store()
    prediction = prediction_to_correct(
        store, prediction_id, TASK, "classify a clip first, then correct it", user
    )
    label = corrected_text(label, "label", MAX_LABEL_CHARS, "pick the right label, or type a new one")
    known = label in prediction.input["labels"]
    fused = prediction.output.get("fused") or [{}]
    note = note or (CONFIRMED if label == fused[0].get("label") else None)
    return store.add_correction(prediction.id, {"label": label, "in_label_set": known}, user=user, note=note)
