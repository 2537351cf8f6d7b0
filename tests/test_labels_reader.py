"""The one labels reader: every kind of label, with its source, who gave it, and how settled it is."""

from __future__ import annotations

import pytest

from mmdemo.data import Store, labels
from mmdemo.labeling import queue, review
from tests.labeling_helpers import FAKE_MODEL, add_accounts, fake_predictor, make_images, make_job


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "labels.db")


def _label_job(store, job, answers: dict[str, list[str]]) -> None:
    for user, values in answers.items():
        for value in values:
            view = queue.next_item(job.id, user, predictor=fake_predictor, store=store)
            queue.submit(job.id, view.item.id, user, value, store=store)


def test_corrections_are_single_labels_of_the_prediction_they_correct(store, tmp_path):
    image = store.add_media(make_images(tmp_path / "imgs", 1) / "img000.png", "image")
    asked = store.record_prediction(
        "vqa",
        media_id=image.id,
        input={"question": " what colour? "},
        output={"answer": "blue"},
        model=FAKE_MODEL,
    )
    store.add_correction(asked.id, {"answer": "green"}, user="ann")
    store.add_correction(asked.id, {"answer": "red"})  # a later correction (anonymous) supersedes it
    untouched = store.record_prediction("vqa", media_id=image.id, input={}, output="blue", model=FAKE_MODEL)
    [label] = labels.read(store, "vqa")
    assert (label.source, label.settled, label.value, label.prompt) == (
        "correction",
        "single",
        "red",
        "what colour?",
    )
    assert (label.user, label.anonymous, label.prediction_id) == ("anonymous", True, asked.id)
    assert (label.model_name, label.media_id, label.job_id) == ("fake captioner", image.id, None)
    assert untouched.id not in {label.prediction_id for label in labels.read(store, "vqa")}
    assert list(labels.read(store, "vqa", include_anonymous=False)) == []
    assert list(labels.read(store, "caption")) == []


def test_judgements_are_retrieval_labels_with_their_query_and_index(store, tmp_path):
    folder = make_images(tmp_path / "imgs", 2)
    first, second = (store.add_media(folder / f"img00{i}.png", "image") for i in range(2))
    common = {"rank": 1, "score": 0.4, "embedder": FAKE_MODEL, "index_name": "photos", "index_version": 1}
    store.add_judgement(result_media_id=first.id, relevant=True, query_text="a square", user="ann", **common)
    store.add_judgement(result_media_id=second.id, relevant=False, query_media_id=first.id, **common)
    judged = list(labels.read(store, "retrieval"))
    assert [(j.source, j.settled, j.value, j.user) for j in judged] == [
        ("judgement", "single", "relevant", "ann"),
        ("judgement", "single", "not relevant", "anonymous"),
    ]
    assert (judged[0].prompt, judged[0].index_name, judged[0].model_score) == ("a square", "photos", 0.4)
    assert (judged[1].prompt, judged[1].query_media_id, judged[1].media_id) == ("", first.id, second.id)
    assert list(labels.read(store, "retrieval", sources=("submission", "review"))) == []


def test_job_labels_say_who_gave_them_and_how_each_item_was_settled(store, tmp_path):
    job = make_job(store, make_images(tmp_path / "imgs", 3), task="video", labels=("a", "b"), overlap=2)
    add_accounts(store, {"ann1": "annotator", "ann2": "annotator", "rev": "reviewer"})
    _label_job(store, job, {"ann1": ["a", "a", "b"], "ann2": ["a", "b"]})  # item 3 has one label of two
    items = store.job_items(job.id)
    review.decide(job.id, items[1].id, "rev", "b", store=store)
    found = [
        (label.item_id, label.source, label.user, label.value, label.settled)
        for label in labels.read(store, "video")
    ]
    assert found == [
        (items[0].id, "submission", "ann1", "a", "agreed"),
        (items[0].id, "submission", "ann2", "a", "agreed"),
        (items[1].id, "submission", "ann1", "a", "reviewed"),
        (items[1].id, "submission", "ann2", "b", "reviewed"),
        (items[1].id, "review", "rev", "b", "reviewed"),
        (items[2].id, "submission", "ann1", "b", "unreviewed"),
    ]
    every = list(labels.read(store, "video", job_ids=[job.id]))
    assert all(label.job_id == job.id and label.prediction_id is not None for label in every)
    assert all(label.model_name == "fake captioner" and label.annotators for label in every)
    assert [label.reviewer for label in every if label.source == "review"] == ["rev"]

    finals = labels.final_labels(job, store)
    assert [(f.item_id, f.source, f.value, f.settled) for f in finals] == [
        (items[0].id, "submission", "a", "agreed"),
        (items[1].id, "review", "b", "reviewed"),
    ]
    assert finals[1].annotators == ("ann1", "ann2") and finals[1].reviewer == "rev"
    with_unreviewed = labels.final_labels(job, store, include_unreviewed=True)
    assert [(f.value, f.settled) for f in with_unreviewed][-1] == ("b", "unreviewed")


def test_anonymous_job_labels_and_unknown_jobs_or_sources(store, tmp_path):
    job = make_job(store, make_images(tmp_path / "imgs", 1), overlap=1)
    _label_job(store, job, {"anonymous:s1": ["seen by a visitor"]})
    [label] = labels.read(store, "caption")
    assert (label.source, label.user, label.anonymous, label.settled) == (
        "submission",
        "anonymous:s1",
        True,
        "agreed",
    )
    assert list(labels.read(store, "caption", include_anonymous=False)) == []
    assert labels.final_labels(job, store) == []
    with pytest.raises(ValueError, match=f"no labeling job #{job.id} of task video"):
        list(labels.read(store, "video", job_ids=[job.id]))
    with pytest.raises(ValueError, match="unknown label source 'vote'"):
        list(labels.read(store, "caption", sources=("vote",)))
    with pytest.raises(ValueError, match="unknown task 'captions'"):
        list(labels.read(store, "captions"))


def test_a_one_one_tie_is_left_for_review_not_settled_by_who_came_first(store, tmp_path):
    job = make_job(store, make_images(tmp_path / "imgs", 2), task="video", labels=("a", "b"), overlap=2)
    add_accounts(store, {"ann1": "annotator", "ann2": "annotator"})
    _label_job(store, job, {"ann1": ["a", "b"], "ann2": ["b"]})  # item 1: a vs b; item 2: one label
    finals = labels.final_labels(job, store, include_unreviewed=True)
    items = store.job_items(job.id)
    tied = store.submissions(job.id, item_id=items[0].id)
    assert len(tied) == 2 and {s.value for s in tied} == {"a", "b"}
    assert all(f.item_id != items[0].id for f in finals)
