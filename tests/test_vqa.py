from __future__ import annotations

import json

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from mmdemo import accounts
from mmdemo.cli import main
from mmdemo.data import StoreError, default_store
from mmdemo.media.files import MAX_SIDE, MediaError
from mmdemo.serving.registry import Registry
from mmdemo.tasks import vqa
from mmdemo.ui import vqa as vqa_tab
from tests import caption_vqa_helpers as helpers
from tests.conftest import ASSETS, served

CAT, COFFEE = str(ASSETS / "cat.jpg"), str(ASSETS / "coffee.jpg")
profile_flag_does_not_leak = helpers.profile_flag_does_not_leak
not_an_image = helpers.not_an_image
LONG_QUESTION = "is there " + "a very " * 100 + "small cat?"


def test_tiny_blip_answers_with_ranked_scores_and_records_them(tiny):
    result = vqa.ask(CAT, "  what is   this? ", registry=tiny, user="ana")
    assert type(tiny.get("vqa").model).__name__ == "BlipForQuestionAnswering"
    assert result.question == "what is this?" and result.answer == result.top[0][0]
    scores = [score for _, score in result.top]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4
    assert not result.model.baseline
    prediction = default_store().prediction(result.prediction_id)
    assert prediction.task == "vqa" and prediction.input["question"] == "what is this?"
    assert prediction.output == {"answer": result.answer, "top": [list(pair) for pair in result.top]}
    assert (
        prediction.user == "ana" and prediction.profile == "tiny" and prediction.params["top_k"] == vqa.TOP_K
    )


def test_several_questions_are_batched_and_make_a_history(tiny):
    questions = ["what is this?", "is it a cat?", "what colour is it?"]
    results = vqa.ask_questions(CAT, questions, registry=tiny, user="ana")
    assert len({r.prediction_id for r in results}) == 3 and len({r.media_id for r in results}) == 1
    vqa.ask(COFFEE, "is it hot?", registry=tiny)  # another image's question stays out of the cat's history
    correction_id = vqa.correct_answer(results[1].prediction_id, "yes", user="ana")
    history = vqa.question_history(CAT, user="ana")
    assert [row[0] for row in history] == [r.prediction_id for r in reversed(results)]  # newest first
    assert [row[1] for row in history] == ["what colour is it?", "is it a cat?", "what is this?"]
    assert history[1][3] == "yes" and history[0][3] == ""
    assert vqa.question_history(media_id=results[0].media_id, user="ana") == history
    assert default_store().latest_correction(results[1].prediction_id).id == correction_id
    assert vqa.question_history(None) == []


def test_lite_answers_are_non_empty_and_labelled_baseline(lite):
    yes = vqa.ask(CAT, "Is there a cat in the picture?", registry=lite)
    what = vqa.ask(CAT, "What is this?", registry=lite)
    assert yes.answer == "yes" and "cat" in what.answer
    assert yes.model.baseline and "baseline" in yes.model_label
    assert len(what.top) > 1


def test_a_corrected_answer_is_stored_with_question_and_model_answer(tiny):
    accounts.add_user("bo", "reviewer", "password123")  # a reviewer corrects anyone's answer
    result = vqa.ask(CAT, "what animal is this?", registry=tiny)
    correction_id = vqa.correct_answer(result.prediction_id, " a cat ", user="bo")
    store = default_store()
    correction = store.latest_correction(result.prediction_id)
    assert correction.id == correction_id and correction.output == {"answer": "a cat"}
    assert correction.user == "bo"
    prediction = store.prediction(correction.prediction_id)
    assert prediction.input["question"] == "what animal is this?"
    assert prediction.output["answer"] == result.answer and prediction.media_id == result.media_id
    with pytest.raises(ValueError, match="empty"):
        vqa.correct_answer(result.prediction_id, "  ")
    with pytest.raises(StoreError, match="no vqa prediction"):
        vqa.correct_answer(10_000, "a cat")
    assert len(store.corrections()) == 1


def test_bad_questions_and_images_get_clear_messages(tiny, not_an_image, tmp_path):
    with pytest.raises(vqa.QuestionError, match="empty"):
        vqa.ask(CAT, "   \n ", registry=tiny)
    with pytest.raises(vqa.QuestionError, match="empty"):
        vqa.ask(CAT, None, registry=tiny)
    with pytest.raises(MediaError, match="no image given"):
        vqa.ask(None, "what is this?", registry=tiny)
    with pytest.raises(MediaError, match=r"notes\.jpg: not an image"):
        vqa.ask(not_an_image, "what is this?", registry=tiny)
    with pytest.raises(ValueError, match="top-k"):
        vqa.ask(CAT, "what is this?", top_k=0, registry=tiny)
    assert default_store().counts()["predictions"] == 0


def test_a_long_question_is_truncated_with_a_note(tiny):
    result = vqa.ask(CAT, LONG_QUESTION, registry=tiny)
    assert len(result.question) <= vqa.MAX_QUESTION_CHARS and LONG_QUESTION.startswith(result.question)
    assert LONG_QUESTION[len(result.question)] == " "  # cut between words, not inside one
    assert any("only its first" in note for note in result.notes)


def test_a_huge_image_is_downscaled_with_a_note(tiny, tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (MAX_SIDE + 500, 300), (10, 120, 10)).save(path)
    result = vqa.ask(str(path), "what is this?", registry=tiny)
    assert any("downscaled" in note for note in result.notes)


# -- the tab's handlers ---------------------------------------------------------------------------


def test_tab_handlers_ask_correct_and_show_history(tiny):
    answer, top, about, prediction_id, saved, history = vqa_tab.ask(tiny, CAT, "what is this?", None)
    assert answer in top and abs(sum(top.values()) - 1) < 1e-4 and "latency" in about
    assert saved == "" and [row[0] for row in history] == [prediction_id]
    vqa_tab.ask(tiny, CAT, "is it a cat?", None)
    message, history = vqa_tab.save_correction(prediction_id, "a cat", CAT, None)
    assert message.startswith("✔ saved as correction #") and len(history) == 2
    assert history[1][0] == prediction_id and history[1][3] == "a cat" and history[0][3] == ""
    assert vqa_tab.new_image(CAT) == ("", None, "", None, "", history)
    assert vqa_tab.new_image(None)[-1] == []


def test_tab_handlers_turn_bad_input_into_messages(tiny, not_an_image):
    with pytest.raises(gr.Error, match="question is empty"):
        vqa_tab.ask(tiny, CAT, "", None)
    with pytest.raises(gr.Error, match="no image given"):
        vqa_tab.ask(tiny, None, "what is this?", None)
    with pytest.raises(gr.Error, match="no image given"):  # the missing image is the first thing to fix
        vqa_tab.ask(tiny, None, "", None)
    with pytest.raises(gr.Error, match="not an image"):
        vqa_tab.ask(tiny, not_an_image, "what is this?", None)
    with pytest.raises(gr.Error, match="ask a question first"):
        vqa_tab.save_correction(None, "a cat", CAT, None)


# -- the command line -------------------------------------------------------------------------------
def test_cli_ask_json_shape(capsys):
    assert main(["--profile", "lite", "ask", CAT, "Is there a cat?", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert set(reply) == {"answer", "model", "top"} and reply["answer"] == "yes"
    assert "baseline" in reply["model"]
    assert all(set(item) == {"answer", "score"} for item in reply["top"])
    assert reply["top"][0]["answer"] == reply["answer"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ask", CAT, "  "], "question is empty"),
        (["ask", "{bad}", "what is this?"], "not an image"),
        (["ask", "missing.png", "what is this?"], "file not found"),
    ],
)
def test_cli_ask_bad_input_exits_2_with_one_line(argv, message, not_an_image, capsys):
    assert main(["--profile", "tiny", *[a.format(bad=not_an_image) for a in argv]]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and len(captured.err.strip().splitlines()) == 1


def test_cli_ask_plain_prints_the_answer_and_notes_truncation(capsys):
    assert main(["--profile", "tiny", "ask", CAT, LONG_QUESTION]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1 and "only its first" in captured.err


# -- the served app, through gradio_client ------------------------------------------------------------
def test_both_tabs_through_gradio_client_by_api_name():
    from mmdemo.services import Services
    from mmdemo.ui.app import build_app

    with served(build_app(Services.create(Registry("auto")))) as url:  # lite offline, as a visitor gets it
        client = Client(url, verbose=False)
        captioned = client.predict(handle_file(CAT), "beam", 3, 20, 1.0, "", api_name="/caption")
        caption, prediction_id = captioned["caption"], captioned["prediction_id"]
        assert "cat" in caption and captioned["model"]["baseline"] is True
        assert default_store().prediction(prediction_id).output == caption
        saved = client.predict(prediction_id, "a tabby cat", api_name="/correct_caption")
        assert saved["prediction_id"] == prediction_id and saved["correction_id"] >= 1
        batch = client.predict(
            [handle_file(CAT), handle_file(COFFEE)], "beam", 3, 20, 1.0, "", api_name="/caption_batch"
        )
        assert [row["name"] for row in batch["captions"]] == ["cat.jpg", "coffee.jpg"]
        answered = client.predict(handle_file(CAT), "What is this?", api_name="/ask")
        answer, vqa_id = answered["answer"], answered["prediction_id"]
        assert "cat" in answer and answered["top"][0]["answer"] == answer
        saved = client.predict(vqa_id, "a cat", api_name="/correct_answer")
        assert saved["prediction_id"] == vqa_id
        with pytest.raises(Exception, match="question is empty"):
            client.predict(handle_file(CAT), "  ", api_name="/ask")
    store = default_store()
    assert [c.output for c in store.corrections()] == ["a tabby cat", {"answer": "a cat"}]
