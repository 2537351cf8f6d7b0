"""The Captioning tab: caption one image (or many), read who made the caption, correct it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.serving.models.base import ModelInfo
from mmdemo.serving.registry import Registry
from mmdemo.tasks import captioning
from mmdemo.ui.common import friendly, visitor
from mmdemo.ui.runtime import bind, model_queue, prepare_models

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "images"
EXAMPLES = ("cat", "coffee", "motorcycle", "rocket", "flower", "astronaut", "clock", "coins")
IMAGE_SOURCES = ["upload", "clipboard", "webcam"]
BATCH_COLUMNS = ["prediction", "image", "caption"]


def image_input(elem_id: str) -> gr.Image:
    """An image from upload, clipboard or webcam, handed over as the file path (a retrieval result fits)."""
    return gr.Image(
        type="filepath",
        image_mode=None,  # hand over the uploaded file as it is, so its hash names it
        sources=IMAGE_SOURCES,
        label="Image",
        height=320,
        elem_id=elem_id,
    )


def example_images(names: tuple[str, ...] = EXAMPLES) -> list[str]:
    return [str(ASSETS / f"{name}.jpg") for name in names if (ASSETS / f"{name}.jpg").exists()]


def describe(model: ModelInfo, latency_ms: float, notes: list[str]) -> str:
    """The lines under a prediction: which model, how fast, and what was adjusted on the way."""
    lines = [
        f"**Model:** {model.name} · **profile:** {model.profile} · **device:** {model.device} · "
        f"**latency:** {latency_ms:.0f} ms"
    ]
    if model.baseline:
        lines.append(
            "**baseline** — a lite stand-in that only knows ImageNet objects; the full profile uses BLIP"
        )
    lines.extend(f"_Note: {note}_" for note in notes)
    return "  \n".join(lines)


def _options(
    strategy: str, beams: float, max_length: float, temperature: float, prefix: str
) -> tuple[captioning.CaptionOptions, list[str]]:
    return captioning.caption_options(
        strategy=strategy,
        num_beams=int(beams),
        max_length=int(max_length),
        prefix=prefix,
        temperature=temperature,
    )


@friendly
def caption_one(
    registry: Registry,
    image: str | None,
    strategy: str,
    beams: float,
    max_length: float,
    temperature: float,
    prefix: str,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
) -> tuple[str, str, int, str]:
    """Caption, model description, prediction id, and a cleared "saved" line."""
    options, notes = _options(strategy, beams, max_length, temperature, prefix)
    if image:  # no image gets its message without a model load first
        prepare_models(progress, [captioning.TASK], registry)
    result = captioning.caption_image(image, options, user=visitor(request), registry=registry)
    notes = [*notes, *result.notes]
    for note in notes:
        gr.Warning(note)
    about = describe(result.model, result.latency_ms, notes)
    return result.caption, about, result.prediction_id, ""


@friendly
def save_correction(prediction_id: int | None, caption: str, request: gr.Request) -> str:
    correction_id = captioning.correct_caption(prediction_id, caption, user=visitor(request))
    return f"✔ saved as correction #{correction_id} (of prediction #{prediction_id})"


@friendly
def caption_many(
    registry: Registry,
    files: list[str] | None,
    strategy: str,
    beams: float,
    max_length: float,
    temperature: float,
    prefix: str,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
) -> tuple[list[tuple[str, str]], list[list[Any]], str, str]:
    """Gallery, editable table of captions, model description, and a cleared "saved" line."""
    options, notes = _options(strategy, beams, max_length, temperature, prefix)
    if files:
        prepare_models(progress, [captioning.TASK], registry)
    paths = [str(file) for file in files or []]
    results, skipped = captioning.caption_images(
        paths, options, user=visitor(request), skip_bad=True, registry=registry
    )
    for message in skipped:
        gr.Warning(f"skipped {message}")
    notes = [*notes, *(f"{r.name}: {note}" for r in results for note in r.notes)]
    about = describe(results[0].model, results[0].latency_ms, notes)
    about += f"  \n{len(results)} image(s) captioned in one batch"
    about += "".join(f"  \n_Skipped {message}_" for message in skipped)
    gallery = [(str(r.path), r.caption) for r in results]
    table = [[r.prediction_id, r.name, r.caption] for r in results]
    return gallery, table, about, ""


@friendly
def save_batch_corrections(table: list[list[Any]] | None, request: gr.Request) -> str:
    rows = [(row[0], row[2]) for row in table or [] if len(row) >= 3]
    saved = captioning.save_changed_captions(rows, user=visitor(request))
    if not saved:
        return "no caption was changed: edit a caption in the table first"
    return "✔ saved as correction " + ", ".join(f"#{i}" for i in saved)


def build(demo: gr.Blocks, registry: Registry) -> gr.Image:
    """The tab, captioning with `registry`'s model; returns its image input, which the Retrieval tab can
    fill."""
    with gr.Tab("Captioning", id="captioning"):
        gr.Markdown(
            "Describe an image in words. Upload, paste or take a photo, or pick an example, then "
            "**Caption**. The caption is editable: fix it and **Save correction** to keep it as training "
            "data."
        )
        with gr.Row():
            with gr.Column():
                image = image_input("caption-image")
                gr.Examples(
                    [[path] for path in example_images()],
                    inputs=[image],
                    label="Examples",
                    examples_per_page=8,
                    cache_examples=False,  # examples fill the inputs; no model runs at start-up
                    api_visibility="private",
                )
                with gr.Accordion("Decoding options", open=False):
                    strategy = gr.Radio(
                        list(captioning.STRATEGIES),
                        value="beam",
                        label="Decoding",
                        info="beam: the likeliest caption · sample: a different caption each time",
                    )
                    beams = gr.Slider(1, captioning.MAX_BEAMS, value=3, step=1, label="Beams (beam search)")
                    max_length = gr.Slider(
                        3, captioning.MAX_LENGTH_LIMIT, value=30, step=1, label="Max length (tokens)"
                    )
                    temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="Temperature (sampling)")
                    prefix = gr.Textbox(
                        label="Text prefix (conditional captioning)",
                        placeholder="e.g. a photograph of",
                        max_lines=1,
                    )
                run = gr.Button("Caption", variant="primary")
            with gr.Column():
                caption = gr.Textbox(
                    label="Caption (edit it, then save a correction)",
                    lines=2,
                    interactive=True,
                    elem_id="caption-text",
                )
                about = gr.Markdown(elem_id="caption-about")
                save = gr.Button("Save correction", elem_id="caption-save")
                saved = gr.Markdown(elem_id="caption-saved")
        with gr.Accordion("Several images at once", open=False):
            # no height: a height caps the list, and it showed 2 of 3 files (the rest behind a scroll bar)
            files = gr.File(
                file_count="multiple", file_types=["image"], label="Images", elem_id="caption-batch-files"
            )
            run_batch = gr.Button("Caption all")
            batch_about = gr.Markdown()
            gallery = gr.Gallery(
                label="Captions",
                columns=3,
                height="auto",  # every row, with its captions under the images
                object_fit="contain",  # whole images, not cropped squares
                allow_preview=True,  # a click shows the image large with its full caption
                elem_id="caption-batch-gallery",
            )
            table = gr.Dataframe(
                headers=BATCH_COLUMNS,
                type="array",
                interactive=True,
                wrap=True,
                label="Captions (edit the caption column, then save)",
                column_widths=["12%", "22%", "66%"],
                elem_id="caption-batch-table",
            )
            save_batch = gr.Button("Save corrections")
            batch_saved = gr.Markdown()
        # A component, not gr.State, so API callers can name the prediction they correct.
        prediction = gr.Number(visible=False, precision=0, label="prediction id")

    options = [strategy, beams, max_length, temperature, prefix]
    queue = model_queue("captioning")
    run.click(
        bind(caption_one, registry),
        [image, *options],
        [caption, about, prediction, saved],
        api_name="ui_caption",
        api_visibility="private",
        **queue,
    )
    caption.input(lambda: "", outputs=[saved], api_visibility="private", queue=False)  # no stale "✔ saved"
    # The last "✔ saved" goes first, so a refused correction never shows beside it.
    save.click(lambda: "", outputs=[saved], api_visibility="private", queue=False).then(
        save_correction,
        [prediction, caption],
        [saved],
        api_name="ui_correct_caption",
        api_visibility="private",
    )
    # A new image clears the caption, the model line, the prediction and "saved" in the browser, with no
    # round trip: a server call could land after (and wipe) the caption asked for right after the image
    # arrived, e.g. one sent here by "Caption this" on a busy server.
    image.change(
        None,
        None,
        [caption, about, prediction, saved],
        js="() => ['', '', null, '']",
        api_visibility="private",
        queue=False,
    )
    run_batch.click(
        bind(caption_many, registry),
        [files, *options],
        [gallery, table, batch_about, batch_saved],
        api_name="ui_caption_batch",
        api_visibility="private",
        **queue,
    )
    save_batch.click(
        save_batch_corrections,
        [table],
        [batch_saved],
        api_name="ui_correct_captions",
        api_visibility="private",
    )
    return image
