"""Who may correct a prediction and who sees it: the person who made it (a signed-in user, or the same
browser session of an anonymous visitor), or a reviewer/admin. Fine-tuning and export keep the rule."""

from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client, handle_file

from mmdemo import accounts
from mmdemo.accounts import AccessDenied
from mmdemo.data import default_store, labels
from mmdemo.finetune.data import text_targets
from mmdemo.serving.models.base import ModelInfo
from mmdemo.tasks import captioning, video_classify, vqa
from mmdemo.ui import captioning as captioning_tab
from mmdemo.ui import vqa as vqa_tab
from tests.conftest import ASSETS, served

CAT = str(ASSETS / "cat.jpg")
MODEL = ModelInfo(name="m", version="base", source="test", profile="tiny", device="cpu")


def browser(session: str, username: str | None = None) -> gr.Request:
    return gr.Request(username=username, session_hash=session)


def test_another_anonymous_session_cannot_correct_or_see_a_visitors_predictions_through_the_api(tiny):
    from mmdemo.services import Services
    from mmdemo.ui.app import build_app

    with served(build_app(Services.create(tiny))) as url:
        alice, mallory = Client(url, verbose=False), Client(url, verbose=False)  # two browser sessions
        caption_id = alice.predict(image=handle_file(CAT), beams=1, max_length=5, api_name="/caption")[
            "prediction_id"
        ]
        with pytest.raises(Exception, match="made by someone else"):
            mallory.predict(prediction_id=caption_id, caption="a dog", api_name="/correct_caption")
        saved = alice.predict(prediction_id=caption_id, caption="a tabby cat", api_name="/correct_caption")
        assert saved["prediction_id"] == caption_id and saved["correction_id"]

        answer_id = alice.predict(image=handle_file(CAT), question="What is this?", api_name="/ask")[
            "prediction_id"
        ]
        with pytest.raises(Exception, match="made by someone else"):
            mallory.predict(prediction_id=answer_id, answer="a dog", api_name="/correct_answer")
        # The VQA history is the tab's own view now, not an API endpoint: each session sees its own rows.
        [asker] = {p.user for p in default_store().predictions("vqa")}
        assert [row[0] for row in vqa.question_history(CAT, user=asker)] == [answer_id]
    store = default_store()
    assert [c.output for c in store.corrections()] == ["a tabby cat"]
    assert store.prediction(caption_id).user.startswith("anonymous:")  # the session, hashed, not raw


def test_a_signed_in_user_corrects_their_own_predictions_and_a_reviewer_anyones(tiny):
    store = default_store()
    accounts.add_user("rita", "reviewer", "password123", store=store)
    accounts.add_user("ann", "annotator", "password123", store=store)
    accounts.add_user("bo", "annotator", "password123", store=store)
    result = captioning.caption_image(CAT, registry=tiny, user="ann")
    with pytest.raises(AccessDenied, match=f"prediction #{result.prediction_id} was made by someone else"):
        captioning.correct_caption(result.prediction_id, "a dog", user="bo")
    with pytest.raises(AccessDenied):
        captioning.correct_caption(result.prediction_id, "a dog")  # anonymous
    assert captioning.correct_caption(result.prediction_id, "a cat", user="ann")
    assert captioning.correct_caption(result.prediction_id, "a tabby cat", user="rita")
    assert [c.user for c in store.corrections(result.prediction_id)] == ["ann", "rita"]


def test_labeling_prefills_are_not_corrected_by_visitors():
    store = default_store()
    accounts.add_user("boss", "admin", "password123", store=store)
    prefill = store.record_prediction(
        "caption", media_id=None, input={}, output="x", model=MODEL, user="boss"
    )  # what a job's pre-fill records: its creator's prediction
    message = captioning_tab.save_correction  # what the API's /correct_caption runs
    with pytest.raises(gr.Error, match="made by someone else"):
        message(prefill.id, "a cat", browser("visitor-session"))
    assert store.corrections() == []


def test_vqa_history_shows_a_user_their_own_questions_and_a_reviewer_everyones(tiny):
    store = default_store()
    accounts.add_user("rita", "reviewer", "password123", store=store)
    mine = vqa.ask(CAT, "is it a cat?", user=accounts.visitor("anonymous", "s1"), registry=tiny)
    theirs = vqa.ask(CAT, "what colour is it?", user="ann", registry=tiny)
    assert [row[0] for row in vqa.question_history(CAT, user=accounts.visitor("anonymous", "s1"))] == [
        mine.prediction_id
    ]
    assert [row[0] for row in vqa.question_history(CAT, user=accounts.visitor("anonymous", "s2"))] == []
    assert [row[0] for row in vqa.question_history(CAT, user="rita")] == [
        theirs.prediction_id,
        mine.prediction_id,
    ]
    *_, history = vqa_tab.new_image(CAT, browser("s2"))
    assert history == []
    *_, history = vqa_tab.new_image(CAT, browser("s1"))
    assert [row[0] for row in history] == [mine.prediction_id]


def test_video_corrections_follow_the_same_rule():
    store = default_store()
    prediction = store.record_prediction(
        "video",
        media_id=None,
        input={"labels": ["a cat", "a dog"]},
        output={"fused": [{"label": "a cat"}]},
        model=MODEL,
        user="ann",
    )
    with pytest.raises(AccessDenied, match="made by someone else"):
        video_classify.correct_video(prediction.id, "a dog", user="bo")
    assert video_classify.correct_video(prediction.id, "a dog", user="ann").user == "ann"


def test_fine_tuning_and_export_leave_out_corrections_by_someone_else(tiny):
    """A correction stored by someone other than the prediction's user (as the tabs allowed before) is not
    a label; the owner's and a reviewer's are."""
    store = default_store()
    accounts.add_user("rita", "reviewer", "password123", store=store)
    owned = captioning.caption_image(CAT, registry=tiny, user="ann")
    other = captioning.caption_image(CAT, registry=tiny, user="ann")
    reviewed = captioning.caption_image(CAT, registry=tiny, user="ann")
    store.add_correction(owned.prediction_id, "ann's caption", user="ann")
    store.add_correction(owned.prediction_id, "vandal's caption", user="mallory")  # straight to the store
    store.add_correction(other.prediction_id, "vandal's caption", user="mallory")
    store.add_correction(reviewed.prediction_id, "rita's caption", user="rita")
    read = {label.prediction_id: (label.value, label.user) for label in labels.read(store, "caption")}
    assert read == {
        owned.prediction_id: ("ann's caption", "ann"),
        reviewed.prediction_id: ("rita's caption", "rita"),
    }
    targets = {t.prediction_id: t.target for t in text_targets(store, "caption")}
    assert targets == {owned.prediction_id: "ann's caption", reviewed.prediction_id: "rita's caption"}


@pytest.mark.parametrize("bad", ["nan", "1e300", "-3", "2.5", "seven"])
def test_a_prediction_number_that_is_no_whole_number_is_one_clear_message(bad):
    with pytest.raises(ValueError, match="is not a prediction number"):
        captioning.correct_caption(bad, "a cat")  # type: ignore[arg-type]
