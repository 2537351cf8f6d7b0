"""Annotate: the next item with the model's label pre-filled; accept or correct it, or skip it."""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr

from mmdemo.labeling import jobs, queue
from mmdemo.labeling.ordering import Predictor
from mmdemo.labeling.queue import ItemView, Progress
from mmdemo.media.files import load_image
from mmdemo.tasks import table
from mmdemo.ui.common import friendly
from mmdemo.ui.labeling.shared import as_int, client_address, job_dropdown, worker
from mmdemo.ui.runtime import bind, model_queue

NO_JOB = "Pick a job, then press **Next item**."
ABOUT = (
    "Label data for fine-tuning: each job hands you its items one at a time, pre-filled with the model's "
    "answer; accept it or correct it. Pick a job and press **Next item** to start. "
    "Jobs are created by an admin (*Labeling → Admin*, or "
    "`mmdemo jobs create --name photos --task caption --folder assets/images`)."
)
DONE = "No more items for you in this job. Thank you!"


class ItemShown(NamedTuple):
    """The Annotate outputs, in order: the components when building, their values when answering."""

    image: Any
    video: Any
    prompt: Any
    note: Any
    text: Any  # free-text label
    choice: Any  # label-set label
    item: Any  # the item's number
    progress: Any


class Annotate(NamedTuple):
    job: gr.Dropdown
    shown: ItemShown


def progress_text(progress: Progress) -> str:
    done, total = progress.done_by_you, progress.total_items
    return (
        f"**{done} / {total}** labeled by you · {progress.skipped_by_you} skipped · "
        f"job: {progress.complete_items} / {total} complete"
    )


def _next_outputs(
    predictor: Predictor, job_id: int | None, user: str, client: str | None = None
) -> ItemShown:
    """The user's next item, or, once they have none left, a thank-you and their final progress."""
    view = queue.next_item(job_id, user, predictor=predictor, client=client)
    if view is not None:
        return item_outputs(view)
    done = progress_text(queue.progress(jobs.job(job_id, user), user))
    hidden = gr.update(value=None, visible=False)  # "Item #" too: a number box shows 0 for "nothing"
    return ItemShown(None, hidden, "", DONE, "", gr.update(value=None), hidden, done)


def item_outputs(view: ItemView) -> ItemShown:
    job, spec = view.job, table.get(view.job.task)
    is_video = view.media.kind == "video"
    prompt = f"**{spec.prompt.capitalize()}:** {view.item.prompt}" if spec.prompt and view.item.prompt else ""
    if view.own_label is not None:
        note = f"You labeled this item before: **{view.own_label}**. Submitting again corrects it."
    elif view.model_name:
        version = f" ({view.model_version})" if view.model_version else ""
        note = (
            f"Pre-filled by **{view.model_name}**{version}: accept it or correct it, then press Enter / "
            "Submit."
        )
    else:
        note = "No model prediction for this item: type the label."
    value = view.own_label if view.own_label is not None else view.prefill
    return ItemShown(
        image=None if is_video else load_image(view.media.path).image,
        video=gr.update(value=queue.playable_copy(view.media) if is_video else None, visible=is_video),
        prompt=prompt,
        note=note,
        text=gr.update(value="" if spec.categorical else value, visible=not spec.categorical),
        choice=gr.update(
            choices=job.labels, value=value if value in job.labels else None, visible=spec.categorical
        ),
        item=gr.update(value=view.item.id, visible=True),
        progress=progress_text(view.progress),
    )


@friendly
def next_item(predictor: Predictor, job_id: int | None, request: gr.Request) -> ItemShown:
    if job_id in (None, ""):  # a normal state, not an error: say what to do, paint no field red
        gr.Info("Pick a job first: the list shows the jobs you may label.")
        return ItemShown(*(gr.skip() for _ in range(7)), NO_JOB)
    return _next_outputs(predictor, job_id, worker(request), client_address(request))


@friendly
def submit(
    predictor: Predictor,
    job_id: int | None,
    item_id: float | None,
    text: str,
    choice: str | None,
    request: gr.Request,
) -> ItemShown:
    if job_id in (None, ""):
        return next_item(predictor, job_id, request)
    user = worker(request)
    job = jobs.job(job_id, user)
    queue.submit(job_id, as_int(item_id), user, choice if table.get(job.task).categorical else text)
    return _next_outputs(predictor, job_id, user, client_address(request))


@friendly
def skip(predictor: Predictor, job_id: int | None, item_id: float | None, request: gr.Request) -> ItemShown:
    if job_id in (None, ""):
        return next_item(predictor, job_id, request)
    user = worker(request)
    queue.skip(job_id, as_int(item_id), user)
    return _next_outputs(predictor, job_id, user, client_address(request))


def build(predictor: Predictor) -> Annotate:
    """The sub-tab; `predictor` pre-fills items (a `queue.ModelPredictor` over the app's services)."""
    with gr.Tab("Annotate", id="labeling-annotate"):
        gr.Markdown(ABOUT, elem_id="labeling-about")
        with gr.Row():
            job = job_dropdown("labeling-job")
            next_button = gr.Button("Next item", variant="primary", scale=1)
        progress = gr.Markdown(NO_JOB, elem_id="labeling-progress")
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(label="Item", type="pil", interactive=False, height=420)
                video = gr.Video(label="Clip", interactive=False, visible=False)
            with gr.Column(scale=2):
                prompt = gr.Markdown(elem_id="labeling-prompt")
                note = gr.Markdown(elem_id="labeling-note")
                text = gr.Textbox(
                    label="Label (Enter submits)", lines=1, max_lines=3, elem_id="labeling-text"
                )
                choice = gr.Radio(
                    label="Label (keys 1–9 pick, Enter submits, S skips)",
                    choices=[],
                    visible=False,
                    elem_id="labeling-choice",
                )
                with gr.Row():
                    submit_button = gr.Button("Submit", variant="primary", elem_id="labeling-submit")
                    skip_button = gr.Button("Skip for now", elem_id="labeling-skip")
                item = gr.Number(
                    label="Item #", interactive=False, precision=0, visible=False, elem_id="labeling-item"
                )
    shown = ItemShown(image, video, prompt, note, text, choice, item, progress)
    outputs = list(shown)
    models = model_queue("labeling")  # the next item may need its pre-fill: a model call
    next_button.click(
        bind(next_item, predictor),
        inputs=job,
        outputs=outputs,
        api_name="ui_labeling_next",
        api_visibility="private",
        **models,
    )
    submit_inputs = [job, item, text, choice]
    submit_button.click(
        bind(submit, predictor),
        inputs=submit_inputs,
        outputs=outputs,
        api_name="ui_labeling_submit",
        api_visibility="private",
        **models,
    )
    text.submit(
        bind(submit, predictor),
        inputs=submit_inputs,
        outputs=outputs,
        api_name="ui_labeling_submit_enter",
        api_visibility="private",
        **models,
    )
    skip_button.click(
        bind(skip, predictor),
        inputs=[job, item],
        outputs=outputs,
        api_name="ui_labeling_skip",
        api_visibility="private",
        **models,
    )
    return Annotate(job, shown)
