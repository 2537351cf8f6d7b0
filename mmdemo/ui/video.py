"""The Video tab: classify a clip from its frames and its sound, steer the fusion, correct the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from mmdemo.media.video import MAX_DURATION_S
from mmdemo.serving.registry import Registry
from mmdemo.tasks.fusion import AUDIO, DEFAULT_WEIGHTS, VISUAL
from mmdemo.tasks.video_classify import (
    DEFAULT_FRAMES,
    DEMO_LABEL_SET,
    DEMO_LABELS,
    TOP_K,
    VideoClassification,
    classify_video,
    correct_video,
    label_set_names,
    labels_from_text,
    load_label_set,
    save_label_set,
    sound_weight_unused,
)
from mmdemo.ui.common import friendly, visitor
from mmdemo.ui.runtime import bind, model_queue, prepare_models

SAMPLE_CLIPS = Path(__file__).resolve().parents[2] / "assets" / "videos"
PLOT_COLUMNS = ["time (s)", "score", "label"]
HELP = (
    "Upload a short clip (or pick a sample below), edit the labels, and press **Classify**. The frames "
    "and the sound are scored separately against your labels, then combined with the weights you set: "
    "p = softmax(Σ w·s). A weight of 0 leaves a modality out. If the answer is wrong, pick or type the "
    f"right label and save it as a correction. Clips up to {MAX_DURATION_S // 60} minutes. "
    "Once `mmdemo finetune video` has trained a head on the corrections, it scores clips whose labels are "
    "the ones it learned; the notes say which version made each prediction."
)


NOT_SCORED = "not scored (see the note)"


def _scores(ranking: list[tuple[str, float]], title: str) -> Any:
    """A modality's top labels; one that did not score says so in its title, quietly, not as a headline."""
    if not ranking:
        return gr.Label(value=None, label=f"{title}: {NOT_SCORED}")
    return gr.Label(value={label: score for label, score in ranking[:TOP_K]}, label=title)


def plot_frame(result: VideoClassification) -> pd.DataFrame:
    """The fused score of each of the top labels at each sampled time, long format for gr.LinePlot."""
    shown = [label for label, _ in result.top("fused")]
    columns = [result.labels.index(label) for label in shown]
    rows = [
        (time, float(result.step_scores[step, column]), label)
        for step, time in enumerate(result.timestamps)
        for label, column in zip(shown, columns, strict=True)
    ]
    return pd.DataFrame(rows, columns=PLOT_COLUMNS)


def made_by(result: VideoClassification) -> str:
    """Which model made the prediction: a fine-tuned version, or the zero-shot base model."""
    if result.model is None:
        return "unknown"
    if result.model.version == "base":
        return f"zero-shot, {result.model.name} (base)"
    return f"**fine-tuned {result.model.version}**, {result.model.name}"


def notes_text(result: VideoClassification) -> str:
    applied = ", ".join(f"{name} {weight:.2f}" for name, weight in result.weights.items())
    lines = [
        f"**Prediction #{result.prediction_id}** · {result.duration_s:.1f} s clip · "
        f"{len(result.timestamps)} samples at {', '.join(f'{t:g}' for t in result.timestamps)} s · "
        f"weights applied: {applied}",
        f"- made by: {made_by(result)}",
    ]
    lines += [f"- ℹ️ {note}" for note in result.notes]
    return "\n".join(lines)


@friendly
def classify(
    registry: Registry,
    video: str | None,
    labels_text: str,
    visual_weight: float,
    audio_weight: float,
    frames: float,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
) -> tuple[Any, ...]:
    labels = labels_from_text(labels_text)  # a bad label list gets its message without a model load first
    if video:
        prepare_models(progress, ["embed", "audio"] if audio_weight > 0 else ["embed"], registry)
    result = classify_video(
        video,
        labels,
        {VISUAL: visual_weight, AUDIO: audio_weight},
        n_frames=int(frames),
        user=visitor(request),
        registry=registry,
    )
    return (
        _scores(result.fused, "Fused (top 5)"),
        _scores(result.visual, "Frames only (top 5)"),
        _scores(result.audio, "Sound only (top 5)"),
        notes_text(result),
        plot_frame(result),
        result.prediction_id,
        gr.Dropdown(choices=result.labels, value=result.fused[0][0], interactive=True),
        "",
        "",
    )


@friendly
def correct(prediction_id: int | None, picked: str | None, typed: str, request: gr.Request) -> str:
    label = (typed or "").strip() or (picked or "")
    correction = correct_video(prediction_id, label, visitor(request))
    where = "from the label set" if correction.output["in_label_set"] else "a new label"
    return (
        f"Saved as correction #{correction.id}: **{label}** ({where}) for prediction "
        f"#{correction.prediction_id}, by {correction.user} at {correction.created_at}"
    )


@friendly
def save_labels(name: str, labels_text: str, request: gr.Request) -> tuple[Any, str]:
    labels = save_label_set(name, labels_from_text(labels_text), visitor(request))
    return (
        gr.Dropdown(choices=label_set_names(), value=name.strip()),
        f"Saved label set **{name.strip()}** ({len(labels)} labels).",
    )


@friendly
def load_labels(name: str | None) -> str:
    return "\n".join(load_label_set(name or DEMO_LABEL_SET))


def sound_slider(registry: Registry) -> Any:
    """The Sound weight slider, disabled with the reason where nothing here can score the sound."""
    reason = sound_weight_unused(registry)
    if reason is None:
        return gr.Slider(interactive=True, info=None)
    return gr.Slider(interactive=False, info=f"not used: {reason}")


def refresh_label_sets() -> Any:
    return gr.Dropdown(choices=label_set_names())


def build(demo: gr.Blocks, registry: Registry) -> None:
    """The tab, classifying with `registry`'s models."""
    with gr.Tab("Video", id="video"):
        gr.Markdown(HELP)
        with gr.Row():
            with gr.Column(scale=3):
                video = gr.Video(label="Clip", sources=["upload"], elem_id="video-input", height=300)
                gr.Examples(
                    examples=[[str(path)] for path in sorted(SAMPLE_CLIPS.glob("*.mp4"))],
                    inputs=[video],
                    label="Sample clips",
                    cache_examples=False,  # examples fill the inputs; no model runs at start-up
                    api_visibility="private",
                )
            with gr.Column(scale=2):
                label_set = gr.Dropdown(
                    choices=[DEMO_LABEL_SET],  # the saved sets are listed when the page loads
                    value=DEMO_LABEL_SET,
                    label="Label set",
                    elem_id="video-label-set",
                )
                labels = gr.Textbox(
                    value="\n".join(DEMO_LABELS),
                    lines=8,
                    max_lines=20,
                    label="Labels, one per line",
                    elem_id="video-labels",
                )
                with gr.Row():
                    set_name = gr.Textbox(
                        placeholder="name", show_label=False, scale=2, elem_id="video-set-name"
                    )
                    save_set = gr.Button("Save label set", size="sm", scale=1)
                set_message = gr.Markdown()
        with gr.Row():
            visual_weight = gr.Slider(0, 1, value=DEFAULT_WEIGHTS[VISUAL], step=0.05, label="Frames weight")
            audio_weight = gr.Slider(
                0,
                1,
                value=DEFAULT_WEIGHTS[AUDIO],
                step=0.05,
                label="Sound weight",
                elem_id="video-audio-weight",
            )
            frames = gr.Slider(1, 32, value=DEFAULT_FRAMES, step=1, label="Frames sampled")
        run = gr.Button("Classify", variant="primary", elem_id="video-classify")
        with gr.Row():
            fused = gr.Label(num_top_classes=TOP_K, label="Fused (top 5)", elem_id="video-fused")
            visual = gr.Label(num_top_classes=TOP_K, label="Frames only (top 5)", elem_id="video-visual")
            audio = gr.Label(num_top_classes=TOP_K, label="Sound only (top 5)", elem_id="video-audio")
        notes = gr.Markdown(elem_id="video-notes")
        plot = gr.LinePlot(
            x="time (s)",
            y="score",
            color="label",
            y_lim=[0, 1],
            title="Fused score of the top labels at each sampled frame",
            elem_id="video-plot",
            height=280,
        )
        prediction_id = gr.Number(visible=False, precision=0, label="prediction id")
        with gr.Row(equal_height=False):
            right_label = gr.Dropdown(
                choices=[], label="Right label", interactive=True, elem_id="video-right-label"
            )
            new_label = gr.Textbox(label="…or a new label", elem_id="video-new-label")
            save_correction = gr.Button("Save correction", elem_id="video-correct", scale=0, min_width=180)
        correction_message = gr.Markdown(elem_id="video-correction-message")

    # The plot forgets the last result first: on a page, a plot keeps the first data's legend (its colour
    # domain) and draws no line for labels outside it until its value is emptied.
    run.click(lambda: None, outputs=[plot], api_visibility="private", queue=False).then(
        bind(classify, registry),
        inputs=[video, labels, visual_weight, audio_weight, frames],
        outputs=[
            fused,
            visual,
            audio,
            notes,
            plot,
            prediction_id,
            right_label,
            new_label,
            correction_message,
        ],
        api_name="ui_classify_video",
        api_visibility="private",
        **model_queue("video"),
    )
    save_correction.click(
        correct,
        inputs=[prediction_id, right_label, new_label],
        outputs=[correction_message],
        api_name="ui_correct_video",
        api_visibility="private",
    )
    save_set.click(
        save_labels,
        inputs=[set_name, labels],
        outputs=[label_set, set_message],
        api_name="ui_save_label_set",
        api_visibility="private",
    )
    label_set.input(
        load_labels,
        inputs=[label_set],
        outputs=[labels],
        api_name="ui_load_label_set",
        api_visibility="private",
    )
    demo.load(refresh_label_sets, outputs=[label_set], api_name=False)
    demo.load(bind(sound_slider, registry), outputs=[audio_weight], api_name=False)
