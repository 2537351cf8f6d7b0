"""The open demo's one-click sample job, shown above the Labeling sub-tabs only where it is offered."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.labeling import sample
from mmdemo.ui.common import friendly
from mmdemo.ui.labeling.shared import job_choices, worker

INTRO = (
    "**Try it:** this is an open demo, so nobody creates jobs for you. Press **Start the sample job** to "
    "caption the sample photos: the model pre-fills each caption; accept it or correct it."
)


def shown(request: gr.Request) -> tuple[Any, Any]:
    visible = sample.offered()
    return gr.update(visible=visible), gr.update(visible=visible)


@friendly
def start(request: gr.Request) -> tuple[Any, Any, Any]:
    """Make (or find) the sample job and pick it in the three job pickers."""
    user = worker(request)
    job = sample.start(user)
    choices = job_choices(user)
    picked = gr.update(choices=choices, value=job.id)
    return picked, gr.update(choices=choices), gr.update(choices=choices)


def build() -> tuple[gr.Markdown, gr.Button]:
    with gr.Row():
        intro = gr.Markdown(INTRO, visible=False, elem_id="labeling-sample-intro")
        button = gr.Button(
            f"Start the sample job ({len(sample.PHOTOS)} photos)",
            visible=False,
            scale=0,
            elem_id="labeling-sample-start",
        )
    return intro, button
