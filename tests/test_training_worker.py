"""Training from the Admin section: a run in a worker process, polled to its report, one per task."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import gradio as gr
import pytest
from gradio_client import Client

from mmdemo.data import default_store
from mmdemo.finetune import worker
from mmdemo.serving import registry
from mmdemo.ui.labeling import training
from tests.finetune_helpers import isolated_cli, store_caption_corrections  # noqa: F401
from tests.labeling_helpers import PASSWORD, add_accounts, make_images, make_job
from tests.test_accounts import served_app

RUN_TIMEOUT_S = 400  # a tiny run: a fresh Python with torch, two LoRA steps on CPU


@dataclass
class Request:
    username: str
    session_hash: str = "browser-session"


@pytest.fixture
def tiny_app(monkeypatch, isolated_cli):  # noqa: F811
    monkeypatch.setenv("MMDEMO_PROFILE", "tiny")  # the app serves tiny; its runs train tiny


def _poll_until_done(poll, timeout: float = RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while True:
        shown = poll()
        if not any(f"run {state}" in shown[0] for state in ("starting", "running", "training")):
            return shown
        assert time.monotonic() < deadline, f"the run did not end in {timeout} s: {shown[0]}"
        time.sleep(1)


@pytest.mark.usefixtures("tiny_app")
def test_an_admin_trains_through_the_api_while_the_app_answers_and_the_version_is_served(monkeypatch):
    store = default_store()
    store_caption_corrections(store)
    add_accounts(store, {"boss": "admin", "ann": "annotator"}, password=PASSWORD)
    with served_app(monkeypatch, with_auth=True) as url:
        admin = Client(url, auth=("boss", PASSWORD), verbose=False)
        annotator = Client(url, auth=("ann", PASSWORD), verbose=False)
        args = ("caption", [], 2, None, 0.2, True, False, False)
        with pytest.raises(Exception, match="ann \\(annotator\\) may not do this: it needs the admin role"):
            annotator.predict(*args, api_name="/labeling_train")
        started = admin.predict(*args, api_name="/labeling_train")
        assert started[0].startswith("**caption** run starting (started by boss")
        with pytest.raises(Exception, match="a caption run is already training, started by boss"):
            admin.predict(*args, api_name="/labeling_train")
        # The app answers while the run trains: it trains in another process.
        assert admin.predict(api_name="/whoami") == {"user": "boss", "role": "admin"}
        assert worker.status("caption").pid != os.getpid()
        status, report, _plot, log, _timer = _poll_until_done(
            lambda: admin.predict("caption", api_name="/labeling_train_status")
        )
    assert status.startswith("**caption v1** accepted: served from now on (started by boss")
    assert status.endswith("Now serving: **v1**."), log
    assert "| metric (validation) | before | after | change |" in report and "| loss |" in report
    assert "LoRA caption: 100%" in log
    assert registry.default_registry().serving_spec("caption").version == "v1"
    version = store.model_version("caption", "v1")
    assert version.status == "accepted" and version.config["steps"] == 2
    assert version.metrics["train_examples"] + version.metrics["validation_examples"] == 6


@pytest.mark.usefixtures("tiny_app")
def test_a_run_the_command_refuses_shows_its_one_line_message():
    store = default_store()
    add_accounts(store, {"root": "admin"})
    training.start_training(
        registry.default_registry(), "caption", [], 2, None, 0.2, False, False, False, Request("root")
    )
    status, report, plot, log, timer = _poll_until_done(
        lambda: training.poll_training("caption", Request("root"))
    )
    assert status.startswith("**caption** run failed (started by root")
    # The command's one-line refusal, as the CLI prints it (less its "mmdemo: " prefix).
    assert status.endswith(f": {log.strip().splitlines()[-1].removeprefix('mmdemo: ')}")
    assert "need at least" in status and "Traceback" not in status and report == ""
    assert not plot["visible"] and not timer.active
    run = worker.status("caption")
    assert run.state == "failed" and run.returncode == 2
    # The next run of the task may start: nothing is training.
    assert not run.active


def test_bad_requests_and_other_roles_are_refused_before_any_process_starts(tmp_path):
    store = default_store()
    add_accounts(store, {"root": "admin", "rev": "reviewer"})
    video_job = make_job(store, make_images(tmp_path / "imgs", 2), task="video", labels=("a", "b"))
    refusals = [
        ("caption", [], 2, Request("rev"), "rev \\(reviewer\\) may not do this: it needs the admin role"),
        ("caption", [], 2, Request("anonymous"), "anonymous visitors may not do this"),
        ("caption", [], -1, Request("root"), "steps must be at least 1"),
        ("caption", [video_job.id], 2, Request("root"), f"no labeling job #{video_job.id} of task caption"),
        ("speech", [], 2, Request("root"), "unknown task 'speech'"),
    ]
    for task, job_ids, steps, request, message in refusals:
        with pytest.raises(gr.Error, match=message):
            training.start_training(
                registry.default_registry(), task, job_ids, steps, None, 0.2, False, False, False, request
            )
    with pytest.raises(gr.Error, match="needs the admin role"):
        training.poll_training("caption", Request("rev"))
    assert worker.runs() == []
    assert training.poll_training("video", Request("root")).status == "No video run yet."


def test_a_run_whose_worker_died_no_longer_blocks_the_task(data_dir):
    folder = worker.runs_dir() / "20200101T000000000000-video"
    folder.mkdir(parents=True)
    (folder / "log.txt").write_text("fusion head:  40%|████      | 4/10 [00:01<00:01]\n")
    dead = {"id": folder.name, "task": "video", "user": "root", "state": "running", "pid": 2**22 + 1}
    dead |= {"started_at": "2020-01-01T00:00:00+00:00", "request": {"task": "video"}}
    (folder / "status.json").write_text(json.dumps(dead))
    run = worker.status("video")
    assert run.state == "failed" and not run.active and run.error == "the worker process stopped"
    assert run.progress == worker.Progress("fusion head", 4, 10)


def test_the_progress_is_read_from_the_last_tqdm_bar():
    log = (
        "warming up\nLoRA vqa:  10%|█  | 1/10 [00:01<00:09]\rLoRA vqa:  20%|██ | 2/10 [00:02<00:08, loss=3.1]"
    )
    assert worker.parse_progress(log) == worker.Progress("LoRA vqa", 2, 10)
    assert worker.parse_progress("no bar yet") is None
    request = worker.TrainRequest("video", job_ids=(3, 4), steps=5, accept_always=True, profile="lite")
    assert request.argv() == [
        "--profile", "lite", "finetune", "video", "--json", "--steps", "5", "--job", "3", "--job", "4",
        "--accept-always",
    ]  # fmt: skip
    everyone = worker.TrainRequest("caption", include_unreviewed=True, include_anonymous=True)
    assert everyone.argv() == ["finetune", "caption", "--json", "--include-unreviewed", "--include-anonymous"]
    assert worker.readable("a\n\rbar 1/3\rbar 2/3\n\nmmdemo: too few\n") == "a\nbar 2/3\nmmdemo: too few"
