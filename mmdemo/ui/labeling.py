"""The Labeling tab: annotate (next item, model prediction pre-filled, accept or correct, skip), review
disagreements, a dashboard of progress and agreement, and admin actions (create a job, export).

Every handler asks `labeling`/`export` as the signed-in user; those functions check the role, so an
annotator calling an admin endpoint through the API gets the same refusal as in the browser.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from mmdemo import accounts, config, export, labeling
from mmdemo.media.files import load_image
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.runtime import model_queue

NO_JOB = "Pick a job, then press **Next item**."
ACCOUNT_COLUMNS = ("name", "role", "sign-in", "created")
# Keys for label-set tasks while the label buttons are shown: 1-9 pick a label, Enter submits, S skips.
# (Free-text labels: Enter in the text box submits.)
KEYBOARD_JS = """
() => {
  if (window.mmdemoLabelingKeys) return;
  window.mmdemoLabelingKeys = true;
  document.addEventListener("keydown", (event) => {
    const choice = document.querySelector("#labeling-choice");
    if (!choice || choice.offsetParent === null) return;
    const target = event.target;
    const typing = target && (target.tagName === "TEXTAREA" ||
      (target.tagName === "INPUT" && target.type !== "radio"));
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[1-9]$/.test(event.key)) {
      const option = choice.querySelectorAll("input[type=radio]")[Number(event.key) - 1];
      if (option) { option.click(); event.preventDefault(); }
    } else if (event.key === "Enter") {
      document.querySelector("#labeling-submit")?.click(); event.preventDefault();
    } else if (event.key === "s" || event.key === "S") {
      document.querySelector("#labeling-skip")?.click(); event.preventDefault();
    }
  });
}
"""


# -- who is signed in (shown above every tab) -------------------------------------------------------------
def identity(request: gr.Request) -> str:
    user = current_user(request)
    if accounts.is_anonymous(user):
        writes = "your labels are marked anonymous" if config.anonymous_writes() else "read-only"
        sign_in = " Sign in with Hugging Face to label under your name." if config.on_spaces() else ""
        return f"Not signed in: anonymous demo visitor ({writes}).{sign_in}"
    role = accounts.role_of(user) or "no role"
    sign_out = "" if config.on_spaces() else " · [Sign out](/logout)"
    return f"Signed in as **{user}** ({role}){sign_out}"


def build_header(demo: gr.Blocks) -> None:
    with gr.Row():
        banner = gr.Markdown(elem_id="signed-in-as")
        if config.on_spaces():
            gr.LoginButton(size="sm", scale=0)
    demo.load(identity, outputs=banner, api_name="whoami")


# -- handlers -------------------------------------------------------------------------------------------
def _worker(request: gr.Request) -> str:
    return labeling.labeler_id(current_user(request), getattr(request, "session_hash", None))


def _job_choices(user: str) -> list[tuple[str, int]]:
    return [(f"{job.name} · {job.task} · overlap {job.overlap}", job.id) for job in labeling.jobs(user)]


@friendly
def list_jobs(request: gr.Request) -> tuple[Any, Any, Any]:
    user = _worker(request)
    choices = _job_choices(user) if accounts.has_role(user, accounts.ANNOTATOR) else []
    update = gr.update(choices=choices)
    return update, update, update


def _next_outputs(job_id: int | None, user: str) -> tuple[Any, ...]:
    """The user's next item, or, once they have none left, a thank-you and their final progress."""
    view = labeling.next_item(job_id, user, predictor=labeling.predict)
    if view is not None:
        return _item_outputs(view)
    done = labeling.progress(labeling.job(job_id, user), user).text()
    thanks = "No more items for you in this job. Thank you!"
    return None, gr.update(value=None, visible=False), "", thanks, "", gr.update(value=None), None, done


def _item_outputs(view: labeling.ItemView) -> tuple[Any, ...]:
    """Values for: image, video, prompt, note, text label, choice label, item number, progress."""
    job = view.job
    is_video = view.media.kind == "video"
    image = None if is_video else load_image(view.media.path).image
    prompt = {"vqa": "**Question:** ", "retrieval": "**Query:** "}.get(job.task, "")
    prompt = f"{prompt}{view.item.prompt}" if view.item.prompt else ""
    if view.own_label is not None:
        note = f"You labeled this item before: **{view.own_label}**. Submitting again corrects it."
    elif view.model_name:
        note = f"Pre-filled by **{view.model_name}**: accept it or correct it, then press Enter / Submit."
    else:
        note = "No model prediction for this item: type the label."
    value = view.own_label if view.own_label is not None else view.prefill
    categorical = job.task in labeling.CATEGORICAL_TASKS
    return (
        image,
        gr.update(value=labeling.playable_copy(view.media) if is_video else None, visible=is_video),
        prompt,
        note,
        gr.update(value="" if categorical else value, visible=not categorical),
        gr.update(choices=job.labels, value=value if value in job.labels else None, visible=categorical),
        view.item.id,
        view.progress.text(),
    )


@friendly
def next_item(job_id: int | None, request: gr.Request) -> tuple[Any, ...]:
    user = _worker(request)
    return _next_outputs(job_id, user)


@friendly
def submit(
    job_id: int | None, item_id: float | None, text: str, choice: str | None, request: gr.Request
) -> tuple[Any, ...]:
    user = _worker(request)
    job = labeling.job(job_id, user)
    value = choice if job.task in labeling.CATEGORICAL_TASKS else text
    labeling.submit(job_id, _int(item_id), user, value)
    return _next_outputs(job_id, user)


@friendly
def skip(job_id: int | None, item_id: float | None, request: gr.Request) -> tuple[Any, ...]:
    user = _worker(request)
    labeling.skip(job_id, _int(item_id), user)
    return _next_outputs(job_id, user)


def _int(value: float | str | None) -> int | None:
    return None if value in (None, "") else int(value)  # type: ignore[arg-type]


@friendly
def show_disagreements(job_id: int | None, request: gr.Request) -> pd.DataFrame:
    rows = [
        {
            "item": d.item.id,
            "prompt": d.item.prompt,
            "file": d.media.path.rsplit("/", 1)[-1],
            "labels": " | ".join(f"{s.user}: {s.value}" for s in d.labels),
        }
        for d in labeling.disagreements(job_id, current_user(request))
    ]
    return pd.DataFrame(rows, columns=["item", "prompt", "file", "labels"])


@friendly
def open_disagreement(job_id: int | None, item_id: float | None, request: gr.Request) -> tuple[Any, ...]:
    """Image, prompt and the candidate labels of one disputed item."""
    disputed = {d.item.id: d for d in labeling.disagreements(job_id, current_user(request))}
    chosen = disputed.get(_int(item_id))  # type: ignore[arg-type]
    if chosen is None:
        raise labeling.LabelingError(f"item #{_int(item_id)} is not among the open disagreements")
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
    reviewer = current_user(request)
    value = written.strip() or accepted
    if not value:
        raise labeling.LabelingError("accept one of the labels, or write the final one")
    labeling.decide(job_id, _int(item_id), reviewer, value)
    return f"Saved the final label of item #{_int(item_id)}: **{value}**", show_disagreements(job_id, request)


@friendly
def dashboard(job_id: int | None, request: gr.Request) -> tuple[Any, ...]:
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
            for s in labeling.job_summaries(user)
        ],
        columns=["job", "task", "items", "complete", "reviewed", "open disagreements"],
    )
    if job_id in (None, ""):
        empty = pd.DataFrame({"annotator": [], "items": []})
        return jobs_table, empty, pd.DataFrame({"label": [], "count": []}), "Pick a job to see its agreement."
    per_annotator = pd.DataFrame(labeling.annotator_progress(job_id, user), columns=["annotator", "items"])
    distribution = pd.DataFrame(labeling.label_distribution(job_id, user), columns=["label", "count"])
    return jobs_table, per_annotator, distribution, agreement_text(labeling.job_agreement(job_id, user))


def agreement_text(summary: labeling.AgreementSummary) -> str:
    if summary.value is None:
        return f"**{summary.measure}:** not yet — no item has two labels."
    lines = [f"**{summary.measure}:** {summary.value:.3f} over {summary.items} items"]
    if summary.pairwise:
        pair_measure = "Cohen's kappa" if summary.measure.startswith("Fleiss") else "exact match"
        lines += ["", f"| annotators | shared items | {pair_measure} |", "|---|---|---|"]
        lines += [f"| {a} · {b} | {n} | {score:.3f} |" for a, b, n, score in summary.pairwise]
    return "\n".join(lines)


@friendly
def create_job(
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
    request: gr.Request,
) -> tuple[str, Any, Any, Any]:
    """Items from one source: a folder on the server, uploads, every image of an index, or a query's
    results."""
    user = current_user(request)
    items = labeling.items_from(
        user, task, folder=folder, files=uploads or [], index_name=index_name, query=query, k=int(k or 0)
    )
    job = labeling.create_job_from(
        user, name, task, items, labels=labels, prompts=prompts, overlap=int(overlap or 1)
    )
    message = (
        f"Created job #{job.id} **{job.name}** ({job.task}, overlap {job.overlap}) "
        f"from {job.source}: {labeling.item_count(job)} items."
    )
    return (message, *list_jobs(request))


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


def sections(request: gr.Request) -> tuple[Any, ...]:
    """Review and Dashboard for reviewers and admins, Admin (with the accounts) for admins. Only spares
    people buttons they may not press: every handler checks the role on the server anyway."""
    user = _worker(request)
    reviewer, admin = accounts.has_role(user, accounts.REVIEWER), accounts.has_role(user, accounts.ADMIN)
    table = show_accounts(request) if admin else pd.DataFrame(columns=list(ACCOUNT_COLUMNS))
    return gr.update(visible=reviewer), gr.update(visible=reviewer), gr.update(visible=admin), table


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


# -- layout ---------------------------------------------------------------------------------------------
def build(demo: gr.Blocks) -> None:
    with gr.Tab("Labeling", id="labeling"), gr.Tabs():
        with gr.Tab("Annotate", id="labeling-annotate"):
            with gr.Row():
                job = gr.Dropdown(
                    label="Job", choices=[], allow_custom_value=True, scale=3, elem_id="labeling-job"
                )
                next_button = gr.Button("Next item", variant="primary", scale=1)
            progress = gr.Markdown(NO_JOB, elem_id="labeling-progress")
            with gr.Row():
                with gr.Column(scale=3):
                    image = gr.Image(label="Item", type="pil", interactive=False, height=420)
                    video = gr.Video(label="Clip", interactive=False, visible=False)
                with gr.Column(scale=2):
                    prompt = gr.Markdown(elem_id="labeling-prompt")
                    note = gr.Markdown(elem_id="labeling-note")
                    text = gr.Textbox(
                        label="Label (Enter submits)", lines=1, max_lines=3, elem_id="labeling-text"
                    )
                    choice = gr.Radio(
                        label="Label (keys 1–9 pick, Enter submits, S skips)",
                        choices=[],
                        visible=False,
                        elem_id="labeling-choice",
                    )
                    with gr.Row():
                        submit_button = gr.Button("Submit", variant="primary", elem_id="labeling-submit")
                        skip_button = gr.Button("Skip for now", elem_id="labeling-skip")
                    item = gr.Number(label="Item #", interactive=False, precision=0, elem_id="labeling-item")
        with gr.Tab("Review", id="labeling-review", visible=False) as review_tab:
            gr.Markdown("Items where annotators disagree. Accept one label, or write the final one.")
            with gr.Row():
                review_job = gr.Dropdown(
                    label="Job", choices=[], allow_custom_value=True, scale=3, elem_id="labeling-review-job"
                )
                load_disputes = gr.Button("Show disagreements", scale=1)
            disputes = gr.Dataframe(
                headers=["item", "prompt", "file", "labels"],
                interactive=False,
                elem_id="labeling-disputes",
            )
            with gr.Row():
                with gr.Column(scale=3):
                    review_image = gr.Image(label="Item", type="pil", interactive=False, height=320)
                with gr.Column(scale=2):
                    review_item = gr.Number(label="Item #", precision=0)
                    open_button = gr.Button("Open item")
                    review_prompt = gr.Textbox(label="Question / query", interactive=False)
                    accepted = gr.Radio(label="Accept a label", choices=[])
                    written = gr.Textbox(label="…or write the final label")
                    decide_button = gr.Button("Save decision", variant="primary")
                    decision = gr.Markdown()
        with gr.Tab("Dashboard", id="labeling-dashboard", visible=False) as dashboard_tab:
            with gr.Row():
                dashboard_job = gr.Dropdown(
                    label="Job",
                    choices=[],
                    allow_custom_value=True,
                    scale=3,
                    elem_id="labeling-dashboard-job",
                )
                refresh = gr.Button("Refresh", scale=1)
            jobs_table = gr.Dataframe(interactive=False, elem_id="labeling-jobs")
            agreement = gr.Markdown(elem_id="labeling-agreement")
            with gr.Row():
                per_annotator = gr.BarPlot(
                    x="annotator", y="items", title="Items labeled per annotator", y_lim=[0, None]
                )
                distribution = gr.BarPlot(
                    x="label", y="count", title="Label distribution", sort="-y", y_lim=[0, None]
                )
        with gr.Tab("Admin", id="labeling-admin", visible=False) as admin_tab:
            gr.Markdown("### Create a job")
            with gr.Row():
                job_name = gr.Textbox(label="Name")
                task = gr.Dropdown(
                    label="Task", choices=list(labeling.TASKS), value="caption", elem_id="labeling-new-task"
                )
                overlap = gr.Number(label="Annotators per item (overlap)", value=1, precision=0, minimum=1)
            gr.Markdown(
                "Items from one of: a folder on the server, uploaded files, an index, a query's results."
            )
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
                    value=labeling.QUERY_K,
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
            gr.Markdown("### Export labels")
            with gr.Row():
                export_task = gr.Dropdown(label="Task", choices=list(labeling.TASKS), value="caption")
                export_format = gr.Radio(label="Format", choices=list(export.FORMATS), value="jsonl")
                include_anonymous = gr.Checkbox(label="Include anonymous labels")
                include_unreviewed = gr.Checkbox(label="Include undecided items (majority label)")
            export_button = gr.Button("Export")
            exported = gr.Markdown()
            export_file = gr.File(label="Download", interactive=False)
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

    item_outputs = [image, video, prompt, note, text, choice, item, progress]
    models = model_queue("labeling")  # the next item may need its pre-fill: a model call
    job_dropdowns = [job, review_job, dashboard_job]
    demo.load(list_jobs, outputs=job_dropdowns, api_name=False)
    demo.load(sections, outputs=[review_tab, dashboard_tab, admin_tab, accounts_table], api_name=False)
    demo.load(None, js=KEYBOARD_JS, api_name=False)
    job.focus(list_jobs, outputs=job_dropdowns, api_name="labeling_jobs")
    next_button.click(next_item, inputs=job, outputs=item_outputs, api_name="labeling_next", **models)
    submit_inputs = [job, item, text, choice]
    submit_button.click(
        submit, inputs=submit_inputs, outputs=item_outputs, api_name="labeling_submit", **models
    )
    text.submit(
        submit, inputs=submit_inputs, outputs=item_outputs, api_name="labeling_submit_enter", **models
    )
    skip_button.click(skip, inputs=[job, item], outputs=item_outputs, api_name="labeling_skip", **models)

    load_disputes.click(
        show_disagreements, inputs=review_job, outputs=disputes, api_name="labeling_disagreements"
    )
    open_inputs = [review_job, review_item]
    open_outputs = [review_image, review_prompt, accepted, written]
    disputes.select(
        pick_row, inputs=disputes, outputs=review_item, api_name="labeling_pick_disagreement"
    ).success(open_disagreement, inputs=open_inputs, outputs=open_outputs, api_name=False)
    open_button.click(
        open_disagreement, inputs=open_inputs, outputs=open_outputs, api_name="labeling_open_disagreement"
    )
    decide_button.click(
        save_decision,
        inputs=[review_job, review_item, accepted, written],
        outputs=[decision, disputes],
        api_name="labeling_decide",
    )
    refresh.click(
        dashboard,
        inputs=dashboard_job,
        outputs=[jobs_table, per_annotator, distribution, agreement],
        api_name="labeling_dashboard",
    )
    create_button.click(
        create_job,
        inputs=[job_name, task, folder, uploads, labels, prompts, overlap, index_name, query, k],
        outputs=[created, *job_dropdowns],
        api_name="labeling_create_job",
        **models,
    )
    export_button.click(
        export_labels,
        inputs=[export_task, export_format, include_anonymous, include_unreviewed],
        outputs=[export_file, exported],
        api_name="labeling_export",
    )
    show_button.click(show_accounts, outputs=accounts_table, api_name="labeling_accounts")
    role_button.click(
        change_role,
        inputs=[account_name, account_role],
        outputs=[role_message, accounts_table],
        api_name="labeling_set_role",
    )
