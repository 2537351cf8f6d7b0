"""Review (reviewers and admins): items where annotators disagree; accept one label or write the final one."""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr
import pandas as pd

from mmdemo.labeling import jobs, review
from mmdemo.labeling.jobs import LabelingError
from mmdemo.labeling.queue import playable_copy
from mmdemo.labeling.review import Disagreement
from mmdemo.media.files import load_image
from mmdemo.tasks import table
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.labeling.shared import as_int, job_dropdown

DISPUTE_COLUMNS = ["item", "prompt", "file", "labels"]
NOTHING_LEFT = "Nothing left to review in this job."


class Review(NamedTuple):
    tab: gr.Tab
    job: gr.Dropdown


class Opened(NamedTuple):
    """The item panel, in order: the components when building, their values when answering."""

    item: Any
    image: Any
    video: Any  # a video job's clip (hidden for images)
    prompt: Any  # the item's question or query; hidden for tasks whose items ask nothing (captions)
    accepted: Any
    written: Any


def _rows(disputes: list[Disagreement]) -> pd.DataFrame:
    rows = [
        {
            "item": d.item.id,
            "prompt": d.item.prompt,
            "file": d.media.path.rsplit("/", 1)[-1],
            "labels": " | ".join(f"{s.user}: {s.value}" for s in d.labels),
        }
        for d in disputes
    ]
    asked = any(d.item.prompt for d in disputes)  # caption and video items ask nothing: no empty column
    return pd.DataFrame(rows, columns=[c for c in DISPUTE_COLUMNS if asked or c != "prompt"])


@friendly
def show_disagreements(job_id: int | None, request: gr.Request) -> pd.DataFrame:
    return _rows(review.disagreements(job_id, current_user(request)))


def opened(task: str, chosen: Disagreement) -> Opened:
    """The panel showing one disputed item: its image, its prompt where the task has one, its labels."""
    asks = table.get(task).prompt  # "question", "query", or None (the task's items ask nothing)
    candidates = list(dict.fromkeys(s.value for s in chosen.labels))
    is_video = chosen.media.kind == "video"
    return Opened(
        item=gr.update(value=chosen.item.id, visible=True),
        image=gr.update(
            value=None if is_video else load_image(chosen.media.path).image, visible=not is_video
        ),
        video=gr.update(value=playable_copy(chosen.media) if is_video else None, visible=is_video),
        prompt=gr.update(
            value=chosen.item.prompt, visible=asks is not None, label=(asks or "prompt").capitalize()
        ),
        accepted=gr.update(choices=candidates, value=None),
        written="",
    )


def cleared() -> Opened:
    """The panel with no item on it (nothing picked, or nothing left to review)."""
    hidden = gr.update(value=None, visible=False)  # "Item #" too: a number box shows 0 for "nothing"
    no_image, no_video = gr.update(value=None, visible=True), gr.update(value=None, visible=False)
    no_prompt = gr.update(value="", visible=False)
    return Opened(hidden, no_image, no_video, no_prompt, gr.update(choices=[], value=None), "")


@friendly
def open_disagreement(job_id: int | None, item_id: float | None, request: gr.Request) -> Opened:
    """Image, prompt and the candidate labels of one disputed item."""
    user = current_user(request)
    disputed = {d.item.id: d for d in review.disagreements(job_id, user)}
    chosen = disputed.get(as_int(item_id))  # type: ignore[arg-type]
    if chosen is None:
        raise LabelingError(f"item #{as_int(item_id)} is not among the open disagreements")
    return opened(jobs.job(job_id, user).task, chosen)


def pick_row(disputes: pd.DataFrame, event: gr.SelectData) -> int | None:
    row = event.index[0] if isinstance(event.index, list | tuple) else event.index
    return int(disputes.iloc[row]["item"]) if disputes is not None and len(disputes) > row else None


def next_after(disputes: list[Disagreement], position: int | None) -> Disagreement | None:
    """The disputed item after `position` in the job's order, else the first one left; None when none is."""
    later = [d for d in disputes if position is not None and d.item.position > position]
    return (later or disputes or [None])[0]


@friendly
def save_decision(
    job_id: int | None, item_id: float | None, accepted: str | None, written: str, request: gr.Request
) -> tuple[Any, ...]:
    """Save the final label, then show the next item awaiting review (or say that none is left)."""
    value = (written or "").strip() or accepted
    if not value:
        raise LabelingError("accept one of the labels, or write the final one")
    user, item = current_user(request), as_int(item_id)
    decided = {d.item.id: d.item.position for d in review.disagreements(job_id, user)}
    review.decide(job_id, item, user, value)
    left = review.disagreements(job_id, user)
    message = f"Saved the final label of item #{item}: **{value}**"
    upcoming = next_after(left, decided.get(item))  # type: ignore[arg-type]
    if upcoming is None:
        return f"{message}. {NOTHING_LEFT}", _rows(left), *cleared()
    shown = opened(jobs.job(job_id, user).task, upcoming)
    return f"{message}. Next: item #{upcoming.item.id}.", _rows(left), *shown


def build() -> Review:
    with gr.Tab("Review", id="labeling-review", visible=False) as tab:
        gr.Markdown("Items where annotators disagree. Accept one label, or write the final one.")
        with gr.Row():
            job = job_dropdown("labeling-review-job")
            load_disputes = gr.Button("Show disagreements", scale=1)
        disputes = gr.Dataframe(headers=DISPUTE_COLUMNS, interactive=False, elem_id="labeling-disputes")
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(
                    label="Item", type="pil", interactive=False, height=320, elem_id="labeling-review-image"
                )
                video = gr.Video(
                    label="Clip", interactive=False, visible=False, elem_id="labeling-review-video"
                )
            with gr.Column(scale=2):
                gr.Markdown("Click a row of the table to open its item.")
                # hidden until an item is open: a number box shows 0 for "nothing"
                item = gr.Number(
                    label="Item #",
                    precision=0,
                    interactive=False,
                    visible=False,
                    elem_id="labeling-review-item",
                )
                open_button = gr.Button("Open item", visible=False)  # the API's way in (`item` set by hand)
                prompt = gr.Textbox(
                    label="Question", interactive=False, visible=False, elem_id="labeling-review-prompt"
                )
                accepted = gr.Radio(label="Accept a label", choices=[], elem_id="labeling-review-accept")
                written = gr.Textbox(label="…or write the final label", elem_id="labeling-review-written")
                decide_button = gr.Button("Save decision", variant="primary", elem_id="labeling-review-save")
                decision = gr.Markdown(elem_id="labeling-review-decision")
    panel = Opened(item, image, video, prompt, accepted, written)
    load_disputes.click(
        show_disagreements,
        inputs=job,
        outputs=disputes,
        api_name="labeling_disagreements",
        api_visibility="undocumented",
    )
    open_inputs = [job, item]
    disputes.select(
        pick_row,
        inputs=disputes,
        outputs=item,
        api_name="ui_labeling_pick_disagreement",
        api_visibility="private",
    ).success(open_disagreement, inputs=open_inputs, outputs=list(panel), api_name=False)
    open_button.click(
        open_disagreement,
        inputs=open_inputs,
        outputs=list(panel),
        api_name="labeling_open_disagreement",
        api_visibility="undocumented",
    )
    decide_button.click(
        save_decision,
        inputs=[job, item, accepted, written],
        outputs=[decision, disputes, *panel],
        api_name="labeling_decide",
        api_visibility="undocumented",
    )
    return Review(tab, job)
