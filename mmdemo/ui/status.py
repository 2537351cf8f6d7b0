"""The Status tab: which model serves each task, where it comes from, and whether it is loaded."""

from __future__ import annotations

import gradio as gr

from mmdemo import registry


def status_view() -> tuple[str, list[list[object]]]:
    active = registry.default_registry()
    summary = f"**Profile:** `{active.profile}` · **device:** `{active.device}`"
    return summary, registry.status_rows(active.status())


def build(demo: gr.Blocks) -> None:
    with gr.Tab("Status", id="status"):
        gr.Markdown(
            "Models load on first use. Each row says which model serves a task and why it was chosen."
        )
        summary = gr.Markdown()
        table = gr.Dataframe(
            headers=list(registry.STATUS_COLUMNS),
            interactive=False,
            wrap=True,
            column_widths=["7%", "15%", "6%", "17%", "6%", "7%", "6%", "6%", "9%", "21%"],
            elem_id="status-table",
            max_height=900,
        )
        refresh = gr.Button("Refresh", size="sm")
    refresh.click(status_view, outputs=[summary, table], api_name="status")
    demo.load(status_view, outputs=[summary, table], api_name=False)
