"""The Labeling tab: one sub-tab per file (annotate, review, dashboard, admin), wired here.

Every handler asks `mmdemo.labeling` as the signed-in user; those functions check the role, so an
annotator calling an admin endpoint through the API gets the same refusal as in the browser.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from mmdemo import accounts, config
from mmdemo.labeling import queue
from mmdemo.services import Services
from mmdemo.ui.common import current_user
from mmdemo.ui.labeling import admin, annotate, dashboard, review, sample
from mmdemo.ui.labeling.shared import list_jobs, worker
from mmdemo.ui.runtime import bind, model_queue

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
    demo.load(identity, outputs=banner, api_name="ui_whoami", api_visibility="private")


def sections(request: gr.Request) -> tuple[Any, ...]:
    """Review and Dashboard for reviewers and admins, Admin (with the accounts) for admins. Only spares
    people buttons they may not press: every handler checks the role on the server anyway."""
    user = worker(request)
    reviewer, is_admin = accounts.has_role(user, accounts.REVIEWER), accounts.has_role(user, accounts.ADMIN)
    table = admin.show_accounts(request) if is_admin else pd.DataFrame(columns=list(admin.ACCOUNT_COLUMNS))
    return gr.update(visible=reviewer), gr.update(visible=reviewer), gr.update(visible=is_admin), table


def build(demo: gr.Blocks, services: Services) -> None:
    predictor = queue.ModelPredictor(services)
    with gr.Tab("Labeling", id="labeling"):
        sample_intro, sample_button = sample.build()
        with gr.Tabs():
            annotating = annotate.build(predictor)
            reviewing = review.build()
            board = dashboard.build()
            job_dropdowns = [annotating.job, reviewing.job, board.job]
            administering = admin.build(job_dropdowns, services)
    demo.load(list_jobs, outputs=job_dropdowns, api_name=False)
    demo.load(
        sections,
        outputs=[reviewing.tab, board.tab, administering.tab, administering.accounts_table],
        api_name=False,
    )
    demo.load(None, js=KEYBOARD_JS, api_name=False)
    demo.load(sample.shown, outputs=[sample_intro, sample_button], api_name=False)
    sample_button.click(
        sample.start, outputs=job_dropdowns, api_name="ui_labeling_sample", api_visibility="private"
    ).success(
        bind(annotate.next_item, predictor),
        inputs=annotating.job,
        outputs=list(annotating.shown),
        api_visibility="private",
        **model_queue("labeling"),
    )
    annotating.job.focus(
        list_jobs, outputs=job_dropdowns, api_name="ui_labeling_jobs", api_visibility="private"
    )
