"""Review (reviewers and admins): items where annotators disagree; accept one label or write the final one."""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr
import pandas as pd

from mmdemo.labeling import review
from mmdemo.labeling.jobs import LabelingError
from mmdemo.media.files import load_image
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.labeling.shared import as_int, job_dropdown

DISPUTE_COLUMNS = ["item", "prompt", "file", "labels"]


class Review(NamedTuple):
    tab: gr.Tab
    job: gr.Dropdown


@friendly
def show_disagreements(job_id: int | None, request: gr.Request) -> pd.DataFrame:
    rows = [
        {
            "item": d.item.id,
            "prompt": d.item.prompt,
            "file": d.media.path.rsplit("/", 1)[-1],
            "labels": " | ".join(f"{s.user}: {s.value}" for s in d.labels),
        }
        for d in review.disagreements(job_id, current_user(request))
    ]
    return pd.DataFrame(rows, columns=DISPUTE_COLUMNS)


@friendly
def open_disagreement(job_id: int | None, item_id: float | None, request: gr.Request) -> tuple[Any, ...]:
    """Image, prompt and the candidate labels of one disputed item."""
    disputed = {d.item.id: d for d in review.disagreements(job_id, current_user(request))}
    chosen = disputed.get(as_int(item_id))  # type: ignore[arg-type]
    if chosen is None:
        raise LabelingError(f"item #{as_int(item_id)} is not among the open disagreements")
    candidates = list(dict.fromkeys(s.value for s in chosen.labels))
    image = None if chosen.media.kind == "video" else load_image(chosen.media.path).image
    return image, chosen.item.prompt, gr.update(choices=candidates, value=None), ""


def pick_row(table: pd.DataFrame, event: gr.SelectData) -> int | None:
    row = event.index[0] if isinstance(event.index, list | tuple) else event.index
    return int(table.iloc[row]["item"]) if table is not None and len(table) > row else None


@friendly
def save_decision(
    job_id: int | None, item_id: float | None, accepted: str | None, written: str, request: gr.Request
) -> tuple[str, pd.DataFrame]:
    value = written.strip() or accepted
    if not value:
        raise LabelingError("accept one of the labels, or write the final one")
    review.decide(job_id, as_int(item_id), current_user(request), value)
    return f"Saved the final label of item #{as_int(item_id)}: **{value}**", show_disagreements(
        job_id, request
    )


def build() -> Review:
    with gr.Tab("Review", id="labeling-review", visible=False) as tab:
        gr.Markdown("Items where annotators disagree. Accept one label, or write the final one.")
        with gr.Row():
            job = job_dropdown("labeling-review-job")
            load_disputes = gr.Button("Show disagreements", scale=1)
        disputes = gr.Dataframe(headers=DISPUTE_COLUMNS, interactive=False, elem_id="labeling-disputes")
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(label="Item", type="pil", interactive=False, height=320)
            with gr.Column(scale=2):
                item = gr.Number(label="Item #", precision=0)
                open_button = gr.Button("Open item")
                prompt = gr.Textbox(label="Question / query", interactive=False)
                accepted = gr.Radio(label="Accept a label", choices=[])
                written = gr.Textbox(label="…or write the final label")
                decide_button = gr.Button("Save decision", variant="primary")
                decision = gr.Markdown()
    load_disputes.click(
        show_disagreements,
        inputs=job,
        outputs=disputes,
        api_name="labeling_disagreements",
        api_visibility="undocumented",
    )
    open_inputs, open_outputs = [job, item], [image, prompt, accepted, written]
    disputes.select(
        pick_row,
        inputs=disputes,
        outputs=item,
        api_name="ui_labeling_pick_disagreement",
        api_visibility="private",
    ).success(open_disagreement, inputs=open_inputs, outputs=open_outputs, api_name=False)
    open_button.click(
        open_disagreement,
        inputs=open_inputs,
        outputs=open_outputs,
        api_name="labeling_open_disagreement",
        api_visibility="undocumented",
    )
    decide_button.click(
        save_decision,
        inputs=[job, item, accepted, written],
        outputs=[decision, disputes],
        api_name="labeling_decide",
        api_visibility="undocumented",
    )
    return Review(tab, job)
