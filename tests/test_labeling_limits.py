"""What anonymous visitors may hold of a job's queue, and the edges of what a job and a label may be."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, field

import gradio as gr
import pytest

from mmdemo.data import Store, default_store
from mmdemo.labeling import jobs, queue
from mmdemo.labeling.jobs import LabelingError
from mmdemo.ui.labeling import annotate
from tests.conftest import ROOT, served
from tests.labeling_helpers import add_accounts, fake_predictor, make_images, make_job


@dataclass
class Client:
    host: str


@dataclass
class Request:
    """What the Annotate handlers read of a browser's request."""

    session_hash: str
    host: str = "203.0.113.7"
    agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
    username: str | None = None
    headers: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = Client(self.host)
        self.headers = {"user-agent": self.agent, **self.headers}


@pytest.fixture(autouse=True)
def no_models(monkeypatch):
    # the app's pre-fills come from the fake model instead of the served one
    monkeypatch.setattr(queue.ModelPredictor, "__call__", lambda self, *item: fake_predictor(*item))


@pytest.fixture
def open_job(tmp_path):
    return make_job(default_store(), make_images(tmp_path / "imgs", 26), overlap=1)


def _mmdemo() -> list[str]:
    script = shutil.which("mmdemo")
    return [script] if script else [sys.executable, "-m", "mmdemo.cli"]


def held(job) -> int:
    return sum(default_store().assignment_counts(job.id).values())


def test_scripted_sessions_from_one_address_cannot_hold_every_item(open_job):
    # 26 scripted sessions from one address, each with its own session and user agent.
    for i in range(26):
        try:
            annotate.next_item(fake_predictor, open_job.id, Request(f"script-{i}", agent=f"bot/{i}"))
        except gr.Error as error:
            assert "network address" in str(error)
    assert held(open_job) <= 10 < 26
    # A real visitor from elsewhere still gets an item, pre-filled.
    shown = annotate.next_item(fake_predictor, open_job.id, Request("visitor", host="198.51.100.20"))
    assert shown.item["value"] is not None and shown.note.startswith("Pre-filled")


def test_scripted_sessions_through_the_api_share_one_labeler(open_job):
    from gradio_client import Client as ApiClient
    from gradio_client.exceptions import AppError

    from mmdemo.ui.app import build_app

    def as_a_new_script(**inputs: object) -> dict:
        # httpx's default 5 s is too short for the config on a loaded 2-core machine (a flaky ReadTimeout)
        return ApiClient(url, verbose=False, httpx_kwargs={"timeout": 60}).predict(**inputs)

    with served(build_app()) as url:
        shown = [as_a_new_script(job_id=open_job.id, api_name="/labeling_next") for _ in range(26)]
        with pytest.raises(AppError, match="is not an item number"):  # a message, not an OverflowError
            as_a_new_script(job_id=open_job.id, item_id=1e300, label="x", api_name="/labeling_submit")
    # Same address and user agent: one anonymous labeler, who gets their open item back every time.
    assert held(open_job) == 1
    assert len({answer["item_id"] for answer in shown}) == 1 and not shown[0]["done"]


def test_a_page_reload_keeps_the_same_anonymous_labeler(open_job):
    first = annotate.next_item(fake_predictor, open_job.id, Request("before-reload"))
    first = annotate.submit(
        fake_predictor, open_job.id, first.item["value"], "a caption", None, Request("before-reload")
    )
    assert first.progress.startswith("**1 / 26** labeled by you")
    again = annotate.next_item(
        fake_predictor, open_job.id, Request("after-reload")
    )  # a new session hash, same browser
    assert again.item == first.item and again.progress.startswith("**1 / 26** labeled by you")


def test_an_anonymous_visitor_holds_at_most_the_cap_for_a_short_time(open_job, monkeypatch):
    store = default_store()
    monkeypatch.setenv("MMDEMO_ANONYMOUS_MAX_HELD", "2")
    user = queue.labeler_id("anonymous", browser="one browser")
    seen = set()
    for _ in range(5):
        view = queue.next_item(open_job.id, user, store=store)
        seen.add(view.item.id)
        queue.skip(open_job.id, view.item.id, user, store=store)
    assert len(seen) == 2 and store.open_assignments(open_job.id, user=user) == 2
    assert queue.anonymous_hold().total_seconds() == 600  # ten minutes by default
    monkeypatch.setenv("MMDEMO_ANONYMOUS_HOLD_MINUTES", "nope")
    with pytest.raises(ValueError, match="MMDEMO_ANONYMOUS_HOLD_MINUTES"):
        queue.anonymous_hold()


def test_job_label_sets_are_capped_and_case_variants_refused(tmp_path):
    store = default_store()
    images = make_images(tmp_path / "imgs", 2)
    with pytest.raises(LabelingError, match="more than the 50"):
        make_job(store, images, task="video", labels=tuple(f"label {i}" for i in range(10_000)))
    with pytest.raises(LabelingError, match="differ only in case"):
        make_job(store, images, task="video", labels=("cat", "Cat", "dog"))
    job = make_job(store, images, task="video", labels=("cat", "dog"), overlap=1)
    add_accounts(store, {"ann": "annotator"})
    view = queue.next_item(job.id, "ann", store=store)
    assert queue.submit(job.id, view.item.id, "ann", "CAT", store=store).value == "cat"


def test_control_and_bidi_characters_are_stripped_from_names_and_labels(tmp_path):
    store = default_store()
    job = make_job(
        store,
        make_images(tmp_path / "imgs", 1),
        task="video",
        labels=("c\u202eat", "d\x00og\u200b"),
        name="my\x1b[31m job\u2066",
        overlap=1,
    )
    assert job.name == "my[31m job" and job.labels == ["cat", "dog"]
    add_accounts(store, {"ann": "annotator"})
    view = queue.next_item(job.id, "ann", store=store)
    assert queue.submit(job.id, view.item.id, "ann", "\u202ddog\r\n", store=store).value == "dog"
    assert (
        jobs.visible_text("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645")
        == "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    )  # ZWNJ kept


def test_jobs_list_prints_no_raw_control_characters(tmp_path):
    store = default_store()
    media = store.add_media(make_images(tmp_path / "imgs", 1) / "img000.png", "image")
    # A name stored before names were cleaned, written straight to the store.
    store.create_job(
        "evil\x1b[2J\u202ename\x07",
        "caption",
        items=[(media.id, "")],
        labels=[],
        prompts=[],
        overlap=1,
        source="",
        created_by="cli\x1b]0;x\x07",
    )
    result = subprocess.run(
        [*_mmdemo(), "jobs", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 0, result.stderr
    assert "evil[2Jname" in result.stdout
    assert not [c for c in result.stdout if unicodedata.category(c)[0] == "C" and c != "\n"]


@pytest.mark.parametrize("bad", [math.nan, 1e300, "abc", -1, 2.5, "1e3"])
def test_item_numbers_are_validated(open_job, bad):
    store = default_store()
    add_accounts(store, {"ann": "annotator"})
    with pytest.raises(LabelingError, match="is not an item number"):
        queue.submit(open_job.id, bad, "ann", "x", store=store)
    with pytest.raises(gr.Error, match="is not an item number"):
        annotate.submit(fake_predictor, open_job.id, bad, "x", None, Request("ann-session", username="ann"))


def test_job_numbers_are_validated(open_job):
    store: Store = default_store()
    with pytest.raises(LabelingError, match="is not a job number"):
        jobs.job(1e300, "anonymous", store=store)
