"""Admin (admins only): create a job, export labels, train a model (`training`), manage accounts and roles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import gradio as gr
import pandas as pd

from mmdemo import accounts
from mmdemo.labeling import autoretrain, export, jobs, ordering
from mmdemo.services import Services
from mmdemo.tasks.table import TASK_NAMES
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.labeling import training
from mmdemo.ui.labeling.shared import list_jobs
from mmdemo.ui.runtime import bind, model_queue

ACCOUNT_COLUMNS = ("name", "role", "sign-in", "created")


class Admin(NamedTuple):
    tab: gr.Tab
    accounts_table: gr.Dataframe


@friendly
def create_job(
    services: Services,
    name: str,
    task: str,
    folder: str,
    uploads: list[str] | None,
    labels: str,
    prompts: str,
    overlap: float,
    index_name: str,
    query: str,
    k: float,
    order: str,
    retrain_every: float | None,
    request: gr.Request,
) -> tuple[str, Any, Any, Any]:
    """Items from one source: a folder on the server, uploads, every image of an index, or a query's
    results."""
    user = current_user(request)
    items = jobs.items_from(
        user,
        task,
        folder=folder,
        files=uploads or [],
        index_name=index_name,
        query=query,
        k=int(k or 0),
        indexes=services.index,
    )
    job = jobs.create_job_from(
        user,
        name,
        task,
        items,
        labels=labels,
        prompts=prompts,
        overlap=int(overlap or 1),
        ordering=order,
        registry=services.registry,
    )
    if retrain_every:
        job = autoretrain.set_auto_retrain(user, job.id, retrain_every, profile=services.registry.profile)
    message = (
        f"Created job #{job.id} **{job.name}** ({job.task}, overlap {job.overlap}, order {job.ordering}) "
        f"from {job.source}: {jobs.item_count(job)} items."
        + (f" {autoretrain.describe(job).capitalize()}." if job.retrain_every else "")
    )
    return (message, *list_jobs(request))


@friendly
def change_retraining(services: Services, job: str, every: float | None, request: gr.Request) -> str:
    """The same as `mmdemo jobs retrain JOB N`."""
    changed = autoretrain.set_auto_retrain(
        current_user(request), job, every, profile=services.registry.profile
    )
    return f"Job #{changed.id} **{changed.name}**: {autoretrain.describe(changed)}."


@friendly
def change_order(services: Services, job: str, order: str, request: gr.Request) -> str:
    """The same as `mmdemo jobs order JOB ORDER`: items already handed out stay; the rest follow it."""
    changed = jobs.set_order(current_user(request), job, order, registry=services.registry)
    return f"Job #{changed.id} **{changed.name}** now hands out items in {changed.ordering} order."


@friendly
def show_accounts(request: gr.Request) -> pd.DataFrame:
    accounts.require_role(current_user(request), accounts.ADMIN)
    rows = [(u.name, u.role, u.source, u.created_at[:19]) for u in accounts.list_users()]
    return pd.DataFrame(rows, columns=list(ACCOUNT_COLUMNS))


@friendly
def change_role(name: str, role: str, request: gr.Request) -> tuple[str, pd.DataFrame]:
    accounts.require_role(current_user(request), accounts.ADMIN)
    account = accounts.set_role((name or "").strip(), role or "")
    return f"**{account.name}** is now {account.role}.", show_accounts(request)


@friendly
def export_labels(
    task: str, fmt: str, include_anonymous: bool, include_unreviewed: bool, request: gr.Request
) -> tuple[str, str]:
    archive, result = export.export_archive(
        task,
        fmt,
        current_user(request),
        include_anonymous=include_anonymous,
        include_unreviewed=include_unreviewed,
    )
    counts = ", ".join(f"{split}: {count}" for split, count in result.rows.items())
    return str(archive), f"Exported {task} as {fmt} ({counts})."


def retrain_field(value: int, elem_id: str) -> gr.Number:
    return gr.Number(
        label="Auto-retrain every N settled labels",
        value=value,
        precision=0,
        minimum=0,
        info="0: off; else a fine-tuning run starts after every N newly settled labels",
        elem_id=elem_id,
    )


def build(job_dropdowns: Sequence[gr.Dropdown], services: Services) -> Admin:
    """`job_dropdowns` get the new job among their choices."""
    with gr.Tab("Admin", id="labeling-admin", visible=False) as tab:
        gr.Markdown("### Create a job")
        with gr.Row():
            job_name = gr.Textbox(label="Name")
            task = gr.Dropdown(
                label="Task", choices=list(TASK_NAMES), value="caption", elem_id="labeling-new-task"
            )
            overlap = gr.Number(label="Annotators per item (overlap)", value=1, precision=0, minimum=1)
            order = gr.Dropdown(
                label="Queue order",
                choices=[("the task's default", ""), *((name, name) for name in ordering.ORDERS)],
                value="",
                info="uncertainty: least-sure items first; diverse: cover the collection first",
            )
            retrain_every = retrain_field(0, "labeling-new-retrain")
        gr.Markdown("Items from one of: a folder on the server, uploaded files, an index, a query's results.")
        with gr.Row():
            folder = gr.Textbox(label="Folder on the server", placeholder="/data/images")
            uploads = gr.File(label="…or upload files", file_count="multiple", type="filepath")
        with gr.Row():
            query = gr.Textbox(
                label="…or the top results of a query (retrieval: the query judged)",
                placeholder="a dog on a beach",
                scale=3,
                elem_id="labeling-new-query",
            )
            k = gr.Number(
                label="Results (k)",
                value=jobs.QUERY_K,
                precision=0,
                minimum=1,
                scale=1,
                elem_id="labeling-new-k",
            )
            index_name = gr.Textbox(
                label="…or every image of an index (with a query: the index searched)",
                placeholder="default",
                scale=2,
            )
        with gr.Row():
            labels = gr.Textbox(label="Label set (video, retrieval), one per line or comma-separated")
            prompts = gr.Textbox(label="Questions (VQA) or queries (retrieval)", lines=2)
        create_button = gr.Button("Create job", variant="primary")
        created = gr.Markdown()
        gr.Markdown("### Change a job's queue order or auto-retrain")
        with gr.Row():
            order_job = gr.Textbox(label="Job number", placeholder="3", elem_id="labeling-order-job")
            new_order = gr.Dropdown(
                label="Queue order",
                choices=list(ordering.ORDERS),
                value="uncertainty",
                elem_id="labeling-order",
            )
            order_button = gr.Button("Change order")
        with gr.Row():
            retrain_job = gr.Textbox(label="Job number", placeholder="3", elem_id="labeling-retrain-job")
            new_every = retrain_field(20, "labeling-retrain-every")
            retrain_button = gr.Button("Set auto-retrain")
        order_message = gr.Markdown()
        gr.Markdown("### Export labels")
        with gr.Row():
            export_task = gr.Dropdown(label="Task", choices=list(TASK_NAMES), value="caption")
            export_format = gr.Radio(label="Format", choices=list(export.FORMATS), value="jsonl")
            include_anonymous = gr.Checkbox(label="Include anonymous labels")
            include_unreviewed = gr.Checkbox(label="Include undecided items (majority label)")
        export_button = gr.Button("Export")
        exported = gr.Markdown()
        export_file = gr.File(label="Download", interactive=False)
        training.build(services.registry)
        gr.Markdown("### Accounts")
        accounts_table = gr.Dataframe(
            headers=list(ACCOUNT_COLUMNS), interactive=False, elem_id="labeling-accounts"
        )
        with gr.Row():
            account_name = gr.Textbox(label="Account", scale=2)
            account_role = gr.Dropdown(label="Role", choices=list(accounts.ROLES), value="annotator")
            role_button = gr.Button("Set role", scale=1)
            show_button = gr.Button("Refresh accounts", scale=1)
        role_message = gr.Markdown()
    create_button.click(
        bind(create_job, services),
        inputs=[
            *(job_name, task, folder, uploads, labels, prompts, overlap, index_name, query, k, order),
            retrain_every,
        ],
        outputs=[created, *job_dropdowns],
        api_name="labeling_create_job",
        api_visibility="undocumented",
        **model_queue("labeling"),  # a query's results need the embedder
    )
    order_button.click(
        bind(change_order, services),
        inputs=[order_job, new_order],
        outputs=order_message,
        api_name="labeling_set_order",
        api_visibility="undocumented",
        **model_queue("labeling"),  # the diverse order needs the embedder
    )
    retrain_button.click(
        bind(change_retraining, services),
        inputs=[retrain_job, new_every],
        outputs=order_message,
        api_name="labeling_set_retraining",
        api_visibility="undocumented",
    )
    export_button.click(
        export_labels,
        inputs=[export_task, export_format, include_anonymous, include_unreviewed],
        outputs=[export_file, exported],
        api_name="ui_labeling_export",
        api_visibility="private",
    )
    show_button.click(
        show_accounts, outputs=accounts_table, api_name="labeling_accounts", api_visibility="undocumented"
    )
    role_button.click(
        change_role,
        inputs=[account_name, account_role],
        outputs=[role_message, accounts_table],
        api_name="labeling_set_role",
        api_visibility="undocumented",
    )
    return Admin(tab, accounts_table)
