"""What the Labeling sub-tabs share: who is labeling, the job pickers, item numbers from the browser."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo import accounts, config
from mmdemo.labeling import jobs, queue
from mmdemo.ui.common import current_user, friendly


def worker(request: gr.Request) -> str:
    """The signed-in user, or the anonymous visitor told apart by their browser (address and user agent:
    the same after a page reload)."""
    headers, address = getattr(request, "headers", None) or {}, client_address(request)
    browser = f"{address}|{headers.get('user-agent', '')}" if address else None
    return queue.labeler_id(current_user(request), getattr(request, "session_hash", None), browser=browser)


def client_address(request: gr.Request) -> str | None:
    """The visitor's network address (on a Space, the first `x-forwarded-for`: its proxy's is the same)."""
    headers = getattr(request, "headers", None) or {}
    if config.on_spaces() and (forwarded := headers.get("x-forwarded-for")):
        return forwarded.split(",")[0].strip()
    return getattr(getattr(request, "client", None), "host", None)


def as_int(value: float | str | None) -> int | None:
    return None if value in (None, "") else jobs.record_id(value, "item")


def job_choices(user: str) -> list[tuple[str, int]]:
    return [(f"{job.name} · {job.task} · overlap {job.overlap}", job.id) for job in jobs.jobs(user)]


@friendly
def list_jobs(request: gr.Request) -> tuple[Any, Any, Any]:
    """The same choices for the three job pickers (Annotate, Review, Dashboard)."""
    user = worker(request)
    choices = job_choices(user) if accounts.has_role(user, accounts.ANNOTATOR) else []
    update = gr.update(choices=choices)
    return update, update, update


def job_dropdown(elem_id: str) -> gr.Dropdown:
    return gr.Dropdown(label="Job", choices=[], allow_custom_value=True, scale=3, elem_id=elem_id)
