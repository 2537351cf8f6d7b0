"""One write gate for the UI and the API: `MMDEMO_ANONYMOUS_WRITES=0` refuses every anonymous write, label
sets are replaced only by their creator or an admin, and a shared index takes images from signed-in users
once accounts exist (unless `MMDEMO_OPEN_INDEX_WRITES=1`)."""

from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client, handle_file

from mmdemo import accounts
from mmdemo.accounts import AccessDenied
from mmdemo.data import default_store
from mmdemo.search.retrieval import Result, Search
from mmdemo.serving.models.base import ModelInfo
from mmdemo.tasks import captioning, video_classify, vqa
from mmdemo.ui import retrieval as retrieval_tab
from mmdemo.ui import video as video_tab
from tests.conftest import ASSETS, served

CAT = str(ASSETS / "cat.jpg")
MODEL = ModelInfo(name="m", version="base", source="test", profile="tiny", device="cpu")
READ_ONLY = "read-only for visitors who are not signed in"


def browser(session: str, username: str | None = None) -> gr.Request:
    return gr.Request(username=username, session_hash=session)


def visitor(session: str) -> str:
    return accounts.visitor("anonymous", session)


@pytest.fixture
def read_only(monkeypatch):
    monkeypatch.setenv("MMDEMO_ANONYMOUS_WRITES", "0")


def _prediction(task: str, user: str, **fields):
    return default_store().record_prediction(task, media_id=None, model=MODEL, user=user, **fields)


def test_read_only_refuses_anonymous_corrections_label_sets_judgements_and_index_additions(read_only):
    me = visitor("s1")
    caption = _prediction("caption", me, input={}, output="x")
    answer = _prediction("vqa", me, input={"question": "q"}, output={"answer": "x"})
    clip = _prediction("video", me, input={"labels": ["a", "b"]}, output={"fused": [{"label": "a"}]})
    for write in (
        lambda: captioning.correct_caption(caption.id, "a cat", user=me),
        lambda: captioning.save_changed_captions([(caption.id, "a cat")], user=me),
        lambda: vqa.correct_answer(answer.id, "yes", user=me),
        lambda: video_classify.correct_video(clip.id, "b", user=me),
        lambda: video_classify.save_label_set("birds", ["owl", "crow"], user=me),
        lambda: accounts.require_index_write(me),
    ):
        with pytest.raises(AccessDenied, match=READ_ONLY):
            write()
    search = Search(
        results=[Result(rank=1, media_id="m", path=CAT, name="cat.jpg", score=0.5)],
        query_text="a cat",
        query_path=None,
        query_media_id=None,
        embedder=MODEL,
        index_name="default",
        index_version=1,
    )
    with pytest.raises(gr.Error, match=READ_ONLY):
        retrieval_tab.judge(search, 1, {}, True, browser("s1"))
    store = default_store()
    assert store.corrections() == [] and store.label_set_names() == [] and store.judgements() == []
    # a signed-in user still writes
    accounts.add_user("ann", "annotator", "password123", store=store)
    assert video_classify.save_label_set("birds", ["owl", "crow"], user="ann") == ["owl", "crow"]


def test_read_only_refuses_anonymous_writes_through_the_api(read_only, tiny, tmp_path):
    from mmdemo.services import Services
    from mmdemo.ui.app import build_app

    with served(build_app(Services.create(tiny, index_root=tmp_path / "index"))) as url:
        client = Client(url, verbose=False)
        caption_id = client.predict(image=handle_file(CAT), beams=1, max_length=5, api_name="/caption")[
            "prediction_id"
        ]
        with pytest.raises(Exception, match=READ_ONLY):
            client.predict(prediction_id=caption_id, caption="a tabby cat", api_name="/correct_caption")
        with pytest.raises(Exception, match=READ_ONLY):
            client.predict(images=[handle_file(CAT)], api_name="/add_images")
        client.predict(query="a cat", k=2, api_name="/search_text")
        with pytest.raises(Exception, match=READ_ONLY):
            client.predict(rank=1, relevant=True, api_name="/judge")
    store = default_store()
    assert store.corrections() == [] and store.judgements() == []
    assert len(store.predictions()) == 1  # visitors still use the demo; only their writes are refused


def test_a_label_set_is_replaced_only_by_its_creator_or_an_admin():
    store = default_store()
    accounts.add_user("boss", "admin", "password123", store=store)
    accounts.add_user("rita", "reviewer", "password123", store=store)
    video_tab.save_labels("birds", "owl\ncrow", browser("s1"))  # anyone may create one
    with pytest.raises(gr.Error, match="belongs to someone else"):
        video_tab.save_labels("birds", "pigeon\nrat", browser("s2"))
    with pytest.raises(AccessDenied, match="belongs to someone else"):
        video_classify.save_label_set("birds", ["pigeon", "rat"], user="rita")  # a reviewer is no admin
    assert store.label_set("birds") == ["owl", "crow"]
    video_tab.save_labels("birds", "owl\ncrow\nheron", browser("s1"))  # its creator may
    assert store.label_set("birds") == ["owl", "crow", "heron"]
    video_classify.save_label_set("birds", ["owl", "wren"], user="boss")  # an admin may
    assert store.label_set("birds") == ["owl", "wren"] and store.label_set_owner("birds") == visitor("s1")
    video_tab.save_labels("fish", "cod\nhake", browser("s2"))  # a new name is anyone's to create
    assert store.label_set_owner("fish") == visitor("s2")


def test_the_shared_index_takes_images_from_signed_in_users_once_accounts_exist(monkeypatch, tiny, tmp_path):
    from mmdemo.search.service import IndexService

    service = IndexService(tiny, root=tmp_path / "index")
    # An open demo (no accounts): anyone may add; no files gets past the gate to the "choose images" message.
    with pytest.raises(gr.Error, match="Choose one or more images"):
        retrieval_tab.add_images(service, None, browser("s1"))
    accounts.add_user("ann", "annotator", "password123", store=default_store())
    with pytest.raises(gr.Error, match="sign in to add images to the shared index"):
        retrieval_tab.add_images(service, [CAT], browser("s1"))
    assert not (tmp_path / "index").exists()
    with pytest.raises(gr.Error, match="Choose one or more images"):
        retrieval_tab.add_images(service, None, browser("s1", username="ann"))
    monkeypatch.setenv("MMDEMO_OPEN_INDEX_WRITES", "1")  # an admin opened it to everyone
    with pytest.raises(gr.Error, match="Choose one or more images"):
        retrieval_tab.add_images(service, None, browser("s1"))


def test_control_and_bidi_characters_are_stripped_from_label_set_names_and_labels():
    labels = ["o\u200bwl", "\x1b[31mcrow", "\u2066heron\u2069"]  # zero-width, terminal escape, bidi isolate
    saved = video_classify.save_label_set("bi\u202erds\x07", labels)
    store = default_store()
    assert saved == ["owl", "[31mcrow", "heron"] and store.label_set_names() == ["birds"]
    assert store.label_set("birds") == saved
