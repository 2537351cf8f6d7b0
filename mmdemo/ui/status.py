"""The Status tab: which model serves each task, where it comes from, and whether it is loaded; below it,
the fine-tuned model versions, with a rollback for admins."""

from __future__ import annotations

import gradio as gr

from mmdemo import accounts
from mmdemo.serving import reporting
from mmdemo.serving.models.base import PUBLIC_TASKS
from mmdemo.serving.registry import Registry
from mmdemo.tasks.table import TASK_NAMES
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.runtime import bind


def status_view(active: Registry) -> tuple[str, list[list[object]]]:
    summary = f"**Profile:** `{active.profile}` · **device:** `{active.device}`"
    return summary, reporting.status_rows(active.status())


def versions_view(active: Registry) -> list[list[object]]:
    return reporting.version_rows(active, active.versions())


@friendly
def rollback_version(active: Registry, task: str, to_version: str, request: gr.Request | None = None) -> str:
    """Stop serving a task's newest version (or go back to `to_version`); admins only once accounts or
    MMDEMO_ADMINS exist (`accounts.may_roll_back`)."""
    user = current_user(request)
    accounts.require_roll_back(user)
    if not task:
        raise gr.Error("pick the task to roll back")
    serving = active.rollback(task, to_version.strip() or None, user=user)
    return f"**{task}** now serves `{serving}` (rolled back by {user})."


def read_only_table(
    headers: tuple[str, ...], widths: list[str], *, elem_id: str, max_height: int
) -> gr.Dataframe:
    return gr.Dataframe(
        headers=list(headers),
        interactive=False,
        wrap=True,
        column_widths=widths,
        elem_id=elem_id,
        max_height=max_height,
    )


def build(demo: gr.Blocks, active: Registry) -> None:
    status_of, versions_of = bind(status_view, active), bind(versions_view, active)
    with gr.Tab("Status", id="status"):
        gr.Markdown(
            "Models load on first use. Each row says which model serves a task and why it was chosen."
        )
        summary = gr.Markdown()
        table = read_only_table(
            reporting.STATUS_COLUMNS,
            ["7%", "15%", "8%", "15%", "6%", "7%", "6%", "6%", "9%", "21%"],
            elem_id="status-table",
            max_height=900,
        )
        refresh = gr.Button("Refresh", size="sm")
        with gr.Accordion("Models: fine-tuned versions", open=True, elem_id="model-versions"):
            gr.Markdown(
                "Each fine-tuning run (`mmdemo finetune ...`) adds a version. The newest *accepted* version "
                "of a task is served at once, without a restart; rolling back serves the one before it."
            )
            versions = read_only_table(
                reporting.VERSION_COLUMNS,
                ["7%", "8%", "9%", "8%", "17%", "8%", "6%", "17%", "7%", "13%"],
                elem_id="versions-table",
                max_height=500,
            )
            with gr.Row(equal_height=True):
                # video and retrieval are served only by their trained versions
                tasks = [*PUBLIC_TASKS, *(name for name in TASK_NAMES if name not in PUBLIC_TASKS)]
                task = gr.Dropdown(tasks, value="caption", label="Task", allow_custom_value=True)
                to_version = gr.Textbox(
                    label="Roll back to (optional)", placeholder="newest goes; or v2, or base"
                )
                rollback = gr.Button("Roll back", variant="stop", elem_id="rollback-button")
                refresh_versions = gr.Button("Refresh versions", size="sm")
            rollback_message = gr.Markdown()
    refresh.click(status_of, outputs=[summary, table], api_name="ui_status", api_visibility="private")
    refresh_versions.click(versions_of, outputs=versions, api_name="ui_versions", api_visibility="private")
    # The tables refresh after the rollback either way; a failed rollback leaves them showing, not blanked.
    rollback.click(
        bind(rollback_version, active),
        inputs=[task, to_version],
        outputs=rollback_message,
        api_name="ui_rollback",
        api_visibility="private",
    ).then(versions_of, outputs=versions, api_name=False).then(
        status_of, outputs=[summary, table], api_name=False
    )
    demo.load(status_of, outputs=[summary, table], api_name=False)
    demo.load(versions_of, outputs=versions, api_name=False)
