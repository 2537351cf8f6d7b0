"""Dashboard (reviewers and admins): every job's progress, and one job's agreement and label counts."""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr
import pandas as pd

from mmdemo.labeling import jobs, stats
from mmdemo.labeling.stats import AgreementSummary, PrefillMatch
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.labeling.shared import job_dropdown

JOB_COLUMNS = ["job", "task", "items", "complete", "reviewed", "open disagreements"]
PREFILL_COLUMNS = ["job", "model", "version", "settled items", "pre-fill matched", "match rate"]
# Count axes: Vega-Lite picks "nice" ticks from the axis length, and over a short range (0–2 items) those
# are halves. Up to COUNT_AXIS_MIN, at CHART_HEIGHT, its ticks step by whole items; labels are integers.
COUNT_AXIS_MIN = 5
CHART_HEIGHT = 260


class Dashboard(NamedTuple):
    tab: gr.Tab
    job: gr.Dropdown


def count_axis(counts: pd.Series) -> dict[str, Any]:
    """BarPlot settings for a count axis whose ticks are whole numbers (never "0.5 items")."""
    top = int(counts.max()) if len(counts) else 0
    return {"y_lim": [0, max(COUNT_AXIS_MIN, top)], "y_axis_format": "d", "height": CHART_HEIGHT}


def agreement_text(summary: AgreementSummary) -> str:
    if summary.value is None:
        return f"**{summary.measure}:** not yet — no item has two labels."
    lines = [f"**{summary.measure}:** {summary.value:.3f} over {summary.items} items"]
    if summary.pairwise:
        lines += ["", f"| annotators | shared items | {summary.pair_measure} |", "|---|---|---|"]
        lines += [f"| {p.first} · {p.second} | {p.shared_items} | {p.score:.3f} |" for p in summary.pairwise]
    return "\n".join(lines)


@friendly
def dashboard(job_id: int | None, request: gr.Request) -> tuple[pd.DataFrame, pd.DataFrame, Any, str]:
    user = current_user(request)
    jobs_table = pd.DataFrame(
        [
            {
                "job": s.job.name,
                "task": s.job.task,
                "items": s.items,
                "complete": f"{s.complete} / {s.items}",
                "reviewed": s.reviewed,
                "open disagreements": s.disagreements,
            }
            for s in stats.job_summaries(user)
        ],
        columns=JOB_COLUMNS,
    )
    if job_id in (None, ""):
        empty = pd.DataFrame({"annotator": [], "items": []})
        return jobs_table, empty, pd.DataFrame({"label": [], "count": []}), "Pick a job to see its agreement."
    per_annotator = pd.DataFrame(stats.annotator_progress(job_id, user), columns=["annotator", "items"])
    distribution = pd.DataFrame(stats.label_distribution(job_id, user), columns=["label", "count"])
    free_text = stats.is_free_text(jobs.job(job_id, user))
    title = "Label length (free-text labels: one bar per length band)" if free_text else "Label distribution"
    chart = gr.BarPlot(
        value=distribution, title=title, sort=None if free_text else "-y", **count_axis(distribution["count"])
    )
    progress = gr.BarPlot(value=per_annotator, **count_axis(per_annotator["items"]))
    return jobs_table, progress, chart, agreement_text(stats.job_agreement(job_id, user))


def _share(matched: int, settled: int) -> str:
    return f"{matched} / {settled} ({matched / settled:.0%})" if settled else "0 / 0"


def prefill_line(matches: list[PrefillMatch]) -> str:
    """The line experts watch: how often the model's pre-fill was the final label, version by version."""
    if not matches:
        return "**Pre-fill matched the final label:** not yet — no pre-filled item is settled."
    settled, matched = sum(m.settled for m in matches), sum(m.matched for m in matches)
    job_ids = {m.job.id for m in matches}
    line = f"**Pre-fill matched the final label:** {_share(matched, settled)} of settled items"
    if len(job_ids) == 1:
        steps = " → ".join(f"{m.version} {_share(m.matched, m.settled)}" for m in matches)
        line += f" · by model version: {steps}"
    return line


@friendly
def prefill_match(job_id: int | None, request: gr.Request) -> tuple[str, pd.DataFrame]:
    """Per job and per model version that pre-filled it (one job when one is picked)."""
    matches = stats.prefill_matches(current_user(request), job_id=job_id)
    rows = [[m.job.name, m.model, m.version, m.settled, m.matched, f"{m.rate:.0%}"] for m in matches]
    return prefill_line(matches), pd.DataFrame(rows, columns=PREFILL_COLUMNS)


def build() -> Dashboard:
    with gr.Tab("Dashboard", id="labeling-dashboard", visible=False) as tab:
        with gr.Row():
            job = job_dropdown("labeling-dashboard-job")
            refresh = gr.Button("Refresh", scale=1)
        jobs_table = gr.Dataframe(interactive=False, elem_id="labeling-jobs")
        agreement = gr.Markdown(elem_id="labeling-agreement")
        with gr.Row():
            per_annotator = gr.BarPlot(
                x="annotator",
                y="items",
                title="Items labeled per annotator",
                elem_id="labeling-per-annotator",
                **count_axis(pd.Series(dtype=int)),
            )
            distribution = gr.BarPlot(
                x="label",
                y="count",
                title="Label distribution",
                sort="-y",
                elem_id="labeling-distribution",
                **count_axis(pd.Series(dtype=int)),
            )
        prefill = gr.Markdown(elem_id="labeling-prefill-match")
        prefill_table = gr.Dataframe(
            headers=PREFILL_COLUMNS, interactive=False, elem_id="labeling-prefill-table"
        )
    refresh.click(
        dashboard,
        inputs=job,
        outputs=[jobs_table, per_annotator, distribution, agreement],
        api_name="labeling_dashboard",
        api_visibility="undocumented",
    )
    refresh.click(
        prefill_match,
        inputs=job,
        outputs=[prefill, prefill_table],
        api_name="labeling_prefill_match",
        api_visibility="undocumented",
    )
    return Dashboard(tab, job)
