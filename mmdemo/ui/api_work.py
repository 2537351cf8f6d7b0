"""The public API's labeling queue (next, submit, skip), model versions and export, and who is asking."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo import accounts
from mmdemo.labeling import export, jobs, queue
from mmdemo.labeling.ordering import Predictor
from mmdemo.labeling.queue import ItemView
from mmdemo.services import Services
from mmdemo.serving import reporting
from mmdemo.tasks import table
from mmdemo.ui.common import current_user
from mmdemo.ui.labeling.shared import client_address, worker


# -- labeling ----------------------------------------------------------------------------------------------
def item_dict(view: ItemView | None) -> dict[str, Any]:
    if view is None:
        return {"done": True, "item_id": None}
    spec = table.get(view.job.task)
    return {
        "done": False,
        "job_id": view.job.id,
        "task": view.job.task,
        "item_id": view.item.id,
        "file": view.media.path.rsplit("/", 1)[-1],
        "prompt": view.item.prompt,
        "labels": view.job.labels if spec.categorical else [],
        "prefill": view.prefill,
        "model": view.model_name,
        "your_label": view.own_label,
        "progress": {
            "done_by_you": view.progress.done_by_you,
            "skipped_by_you": view.progress.skipped_by_you,
            "total_items": view.progress.total_items,
            "complete_items": view.progress.complete_items,
        },
    }


def labeling_jobs(request: gr.Request) -> list[dict[str, Any]]:
    """The labeling jobs you may work on.

    Returns:
        [{"job_id", "name", "task", "overlap", "items"}]
    """
    user = worker(request)
    if not accounts.has_role(user, accounts.ANNOTATOR):
        return []
    return [
        {"job_id": j.id, "name": j.name, "task": j.task, "overlap": j.overlap, "items": jobs.item_count(j)}
        for j in jobs.jobs(user)
    ]


def labeling_next(predictor: Predictor, job_id: int | None, request: gr.Request) -> dict[str, Any]:
    """Your next item of a labeling job, with the model's label pre-filled ({"done": true} when none is left).

    Parameters:
        job_id: the job, from labeling_jobs
    Returns:
        {"done", "job_id", "task", "item_id", "file", "prompt", "labels", "prefill", "model", "your_label",
        "progress"}
    """
    return item_dict(
        queue.next_item(job_id, worker(request), predictor=predictor, client=client_address(request))
    )


def labeling_submit(
    predictor: Predictor, job_id: int | None, item_id: int | None, label: str, request: gr.Request
) -> dict[str, Any]:
    """Submit your label for an item; returns your next item.

    Parameters:
        job_id: the job
        item_id: the item, from labeling_next
        label: your label (one of the job's labels for label-set tasks)
    Returns:
        the next item, as labeling_next returns it
    """
    user = worker(request)
    queue.submit(job_id, item_id, user, label)
    return item_dict(queue.next_item(job_id, user, predictor=predictor, client=client_address(request)))


def labeling_skip(
    predictor: Predictor, job_id: int | None, item_id: int | None, request: gr.Request
) -> dict[str, Any]:
    """Skip an item for now (it comes back once new items run out); returns your next item.

    Parameters:
        job_id: the job
        item_id: the item to skip
    Returns:
        the next item, as labeling_next returns it
    """
    user = worker(request)
    queue.skip(job_id, item_id, user)
    return item_dict(queue.next_item(job_id, user, predictor=predictor, client=client_address(request)))


# -- models and export -------------------------------------------------------------------------------------
def status(services: Services) -> dict[str, Any]:
    """Which model serves each task, where it comes from, and whether it is loaded.

    Returns:
        {"profile", "device", "models": [{column: value}]}
    """
    rows = reporting.status_rows(services.registry.status())
    return {
        "profile": services.registry.profile,
        "device": str(services.registry.device),
        "models": [dict(zip(reporting.STATUS_COLUMNS, row, strict=True)) for row in rows],
    }


def versions(services: Services) -> list[dict[str, Any]]:
    """The fine-tuned model versions of every task, newest first, and which one is served.

    Returns:
        [{"task", "version", "status", "serving", "base model", "profile", "from", "metrics", "by",
        "created"}]
    """
    rows = reporting.version_rows(services.registry, services.registry.versions())
    return [dict(zip(reporting.VERSION_COLUMNS, row, strict=True)) for row in rows]


def rollback(services: Services, task: str, to_version: str = "", request: gr.Request | None = None) -> dict:
    """Stop serving a task's newest fine-tuned version (admins only once accounts exist).

    Parameters:
        task: the task, e.g. "caption"
        to_version: the version to serve instead ("v2", "base"); empty: the one before the newest
    Returns:
        {"task", "serving", "user"}
    """
    user = current_user(request)
    accounts.require_roll_back(user)
    if not (task or "").strip():
        raise jobs.LabelingError("name the task to roll back")
    serving = services.registry.rollback(task.strip(), (to_version or "").strip() or None, user=user)
    return {"task": task.strip(), "serving": serving, "user": user}


def export_labels(
    task: str,
    format: str = "jsonl",
    include_anonymous: bool = False,
    include_unreviewed: bool = False,
    request: gr.Request | None = None,
) -> tuple[str, dict[str, Any]]:
    """Export a task's final labels as a zip of train/validation files (admins only).

    Parameters:
        task: caption, vqa, video or retrieval
        format: jsonl, parquet or hf
        include_anonymous: include labels of visitors who were not signed in
        include_unreviewed: include undecided items (majority label)
    Returns:
        the zip file, and {"task", "format", "rows": {"train", "validation"}}
    """
    archive, result = export.export_archive(
        task,
        format,
        current_user(request),
        include_anonymous=include_anonymous,
        include_unreviewed=include_unreviewed,
    )
    return str(archive), {"task": task, "format": format, "rows": result.rows}


def whoami(request: gr.Request) -> dict[str, Any]:
    """Who the API sees you as: your user name and role ("anonymous" without an account).

    Returns:
        {"user", "role"}
    """
    user = current_user(request)
    return {"user": user, "role": None if accounts.is_anonymous(user) else accounts.role_of(user)}
