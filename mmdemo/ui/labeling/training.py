"""Admin → Train: start a fine-tuning run in the background, watch it, read its report.

The run trains in its own process (`mmdemo.finetune.worker`), so the app keeps answering; a timer polls
the run's status until it ends, then shows the before/after table (and the video head's confusion plot).
An accepted version is served by the app's registry on its next use.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr

from mmdemo import accounts
from mmdemo.finetune import worker
from mmdemo.finetune.worker import RunStatus
from mmdemo.labeling import jobs
from mmdemo.serving.registry import Registry
from mmdemo.tasks.table import TASK_NAMES
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.runtime import bind

POLL_SECONDS = 2.0
BAR_WIDTH = 24


class TrainView(NamedTuple):
    status: str  # Markdown: training, done or failed, and what is served now
    report: str  # Markdown: the run's report (before/after table) once it is done
    plot: Any  # an update of the plot image: the run's confusion matrices, or hidden
    log: str  # the tail of the run's log (tqdm bars, the refusal of a bad run)
    timer: Any  # keeps polling while the run trains


def _bar(fraction: float) -> str:
    filled = round(fraction * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def _serving(task: str) -> str:
    from mmdemo.serving import registry

    active = registry.default_registry().active_version(task)
    return active.version if active is not None else "the base model"


def status_text(run: RunStatus | None, task: str) -> str:
    if run is None:
        return f"No {task} run yet."
    started = f"started by {run.user} at {run.started_at[:19].replace('T', ' ')}"
    if run.active:
        progress = run.progress
        if progress is None:
            return f"**{run.task}** run {run.state} ({started}): loading the data and the model…"
        return (
            f"**{run.task}** run training ({started}) — {progress.stage}: "
            f"`{_bar(progress.fraction)}` {progress.done} / {progress.total}"
        )
    if run.state == "failed":
        return f"**{run.task}** run failed ({started}): {run.error}"
    report = worker.report(run)
    verdict = report.version.status if report else "done"
    if verdict == "accepted":
        outcome = "accepted: served from now on"
    else:
        outcome = f"{verdict}: it did not beat the model it started from"
    return f"**{run.task} {run.version}** {outcome} ({started}). Now serving: **{_serving(run.task)}**."


def view(run: RunStatus | None, task: str) -> TrainView:
    report = worker.report(run) if run is not None else None
    plots = report.plots if report else ()
    return TrainView(
        status=status_text(run, task),
        report=report.markdown if report else "",
        plot=gr.update(value=str(plots[0]) if plots else None, visible=bool(plots)),
        log=run.log_tail if run is not None else "",
        timer=gr.Timer(active=run is not None and run.active),
    )


def _number(value: float | None) -> float | None:
    """0 or blank: the run's own default."""
    return None if value in (None, "", 0) else float(value)


@friendly
def start_training(
    registry: Registry,
    task: str,
    job_ids: list[int] | None,
    steps: float | None,
    learning_rate: float | None,
    validation_share: float | None,
    accept_always: bool,
    include_unreviewed: bool,
    include_anonymous: bool,
    request: gr.Request,
) -> TrainView:
    """Start a run of `task` (admins only) for the profile `registry` serves; a second while one of the task
    trains is refused."""
    steps_ = _number(steps)
    run = worker.start(
        current_user(request),
        worker.TrainRequest(
            task=task,
            job_ids=tuple(int(j) for j in job_ids or ()),
            steps=int(steps_) if steps_ is not None else None,
            learning_rate=_number(learning_rate),
            validation_fraction=_number(validation_share),
            accept_always=bool(accept_always),
            include_unreviewed=bool(include_unreviewed),
            include_anonymous=bool(include_anonymous),
            profile=registry.profile,  # train what this app serves
        ),
    )
    return view(run, run.task)


@friendly
def poll_training(task: str, request: gr.Request) -> TrainView:
    """The task's latest run: progress while it trains, then its report."""
    accounts.require_role(current_user(request), accounts.ADMIN)
    return view(worker.status(task), task)


def _job_choices(task: str, request: gr.Request) -> list[tuple[str, int]]:
    user = current_user(request)
    if not accounts.has_role(user, accounts.ADMIN):
        return []
    return [(f"#{job.id} {job.name}", job.id) for job in jobs.jobs(user) if job.task == task]


@friendly
def job_choices(task: str, request: gr.Request) -> Any:
    """The jobs of a newly picked task, none picked yet (none: the run trains on every stored label)."""
    return gr.update(choices=_job_choices(task, request), value=[])


@friendly
def refresh_job_choices(task: str, request: gr.Request) -> Any:
    """The task's jobs, the picked ones kept (jobs created since the page loaded appear)."""
    return gr.update(choices=_job_choices(task, request))


def build(registry: Registry) -> None:
    """The Train section, inside the Admin tab."""
    with gr.Column(elem_id="train-section"):
        gr.Markdown("### Train")
        with gr.Row():
            task = gr.Dropdown(label="Task", choices=list(TASK_NAMES), value="video", elem_id="train-task")
            run_jobs = gr.Dropdown(
                label="Only these jobs' labels (none: every stored label)",
                choices=[],
                multiselect=True,
                scale=2,
                elem_id="train-jobs",
            )
        with gr.Row():
            steps = gr.Number(label="Steps (0: the run's default)", value=0, precision=0, minimum=0)
            learning_rate = gr.Number(label="Learning rate (0: the run's default)", value=0, minimum=0)
            validation_share = gr.Slider(
                label="Validation share", minimum=0.05, maximum=0.5, step=0.05, value=0.2
            )
            accept_always = gr.Checkbox(label="Serve it even if it is not better")
        with gr.Row():
            include_unreviewed = gr.Checkbox(
                label="Include undecided items (majority label)", elem_id="train-include-unreviewed"
            )
            include_anonymous = gr.Checkbox(
                label="Include anonymous visitors' labels", elem_id="train-include-anonymous"
            )
        with gr.Row():
            start = gr.Button("Start training", variant="primary", elem_id="train-start")
            refresh = gr.Button("Show the latest run", elem_id="train-refresh")
        status = gr.Markdown(elem_id="train-status")
        report = gr.Markdown(elem_id="train-report")
        plot = gr.Image(
            label="Confusion (validation)",
            type="filepath",
            visible=False,
            interactive=False,
            elem_id="train-plot",
        )
        with gr.Accordion("Log", open=False):
            log = gr.Textbox(show_label=False, lines=8, max_lines=8, interactive=False, elem_id="train-log")
    timer = gr.Timer(POLL_SECONDS, active=False)
    outputs = [status, report, plot, log, timer]
    task.change(job_choices, inputs=task, outputs=run_jobs, api_name=False, api_visibility="private")
    run_jobs.focus(
        refresh_job_choices, inputs=task, outputs=run_jobs, api_name=False, api_visibility="private"
    )
    start.click(
        bind(start_training, registry),
        inputs=[
            task,
            run_jobs,
            steps,
            learning_rate,
            validation_share,
            accept_always,
            include_unreviewed,
            include_anonymous,
        ],
        outputs=outputs,
        api_name="labeling_train",
        api_visibility="undocumented",  # the UI's own event (Markdown, plots); scripts run `mmdemo finetune`
    )
    refresh.click(
        poll_training,
        inputs=task,
        outputs=outputs,
        api_name="labeling_train_status",
        api_visibility="undocumented",
    )
    timer.tick(poll_training, inputs=task, outputs=outputs, api_name=False, api_visibility="private")
