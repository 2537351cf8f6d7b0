"""The VQA tab: ask questions about an image, see the top answers, correct them, and see the history."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.serving.registry import Registry
from mmdemo.tasks import vqa
from mmdemo.ui.captioning import ASSETS, describe, image_input
from mmdemo.ui.common import friendly, visitor
from mmdemo.ui.runtime import bind, model_queue, prepare_models

EXAMPLES = (
    ("cat", "What is this?"),
    ("coffee", "Is there a cup in the picture?"),
    ("motorcycle", "Is there a motorcycle?"),
    ("rocket", "What is shown in the image?"),
)


def example_questions() -> list[list[str]]:
    return [[str(ASSETS / f"{name}.jpg"), q] for name, q in EXAMPLES if (ASSETS / f"{name}.jpg").exists()]


@friendly
def ask(
    registry: Registry,
    image: str | None,
    question: str,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
) -> tuple[str, dict[str, float], str, int, str, list[list[Any]]]:
    """Answer, top answers, model description, prediction id, a cleared "saved" line, and the history."""
    if image and (question or "").strip():  # bad input gets its message without a model load first
        prepare_models(progress, [vqa.TASK], registry)
    user = visitor(request)
    result = vqa.ask(image, question, user=user, registry=registry)
    for note in result.notes:
        gr.Warning(note)
    about = describe(result.model, result.latency_ms, result.notes)
    history = vqa.question_history(media_id=result.media_id, user=user)
    return result.answer, dict(result.top), about, result.prediction_id, "", history


@friendly
def save_correction(
    prediction_id: int | None, answer: str, image: str | None, request: gr.Request
) -> tuple[str, list[list[Any]]]:
    user = visitor(request)
    correction_id = vqa.correct_answer(prediction_id, answer, user=user)
    return (
        f"✔ saved as correction #{correction_id} (of prediction #{prediction_id})",
        vqa.question_history(image, user=user),
    )


@friendly
def new_image(
    image: str | None, request: gr.Request | None = None
) -> tuple[str, None, str, None, str, list[list[Any]]]:
    """A new image: clear the last answer and show what you asked about this image before."""
    return "", None, "", None, "", vqa.question_history(image, user=visitor(request))


def build(demo: gr.Blocks, registry: Registry) -> gr.Image:
    """The tab, answering with `registry`'s model; returns its image input, which the Retrieval tab can
    fill."""
    with gr.Tab("VQA", id="vqa"):
        gr.Markdown(
            "Ask a question about an image. Ask as many as you like: each one is kept in the history below. "
            "If an answer is wrong, edit it and **Save correction**."
        )
        with gr.Row():
            with gr.Column():
                image = image_input("vqa-image")
                question = gr.Textbox(
                    label="Question",
                    placeholder="What is in the picture?  (Enter asks)",
                    max_lines=2,
                    elem_id="vqa-question",
                )
                run = gr.Button("Ask", variant="primary")
                gr.Examples(
                    example_questions(),
                    inputs=[image, question],
                    label="Examples",
                    cache_examples=False,  # examples fill the inputs; no model runs at start-up
                    api_visibility="private",
                )
            with gr.Column():
                answer = gr.Textbox(
                    label="Answer (edit it, then save a correction)", interactive=True, elem_id="vqa-answer"
                )
                about = gr.Markdown(elem_id="vqa-about")
                top = gr.Label(label="Top answers", num_top_classes=vqa.TOP_K, elem_id="vqa-top")
                save = gr.Button("Save correction", elem_id="vqa-save")
                saved = gr.Markdown(elem_id="vqa-saved")
        table = gr.Dataframe(
            headers=list(vqa.HISTORY_COLUMNS),
            interactive=False,
            wrap=True,
            label="Questions about this image",
            column_widths=["6%", "34%", "22%", "22%", "16%"],
            elem_id="vqa-history",
        )
        # A component, not gr.State, so API callers can name the prediction they correct.
        prediction = gr.Number(visible=False, precision=0, label="prediction id")

    gr.on(
        [run.click, question.submit],
        bind(ask, registry),
        [image, question],
        [answer, top, about, prediction, saved, table],
        api_name="ui_ask",
        api_visibility="private",
        **model_queue("vqa"),
    )
    save.click(lambda: "", outputs=[saved], api_visibility="private", queue=False).then(  # no stale "✔ saved"
        save_correction,
        [prediction, answer, image],
        [saved, table],
        api_name="ui_correct_answer",
        api_visibility="private",
    )
    image.change(
        new_image,
        [image],
        [answer, top, about, prediction, saved, table],
        api_name="ui_vqa_history",
        api_visibility="private",
    )
    return image
