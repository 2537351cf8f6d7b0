"""The Labeling sub-tabs' handlers, called as the browser calls them (no server): named outputs, the
Markdown they show, and the role checks they pass on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mmdemo.data import default_store
from mmdemo.ui.labeling import annotate, dashboard, review
from tests.labeling_helpers import add_accounts, fake_predictor, make_images, make_job


@dataclass
class Request:
    username: str
    session_hash: str = "browser-session"


@pytest.fixture
def disputed_job(tmp_path):
    store = default_store()
    job = make_job(store, make_images(tmp_path / "imgs", 2), task="video", labels=("indoor", "outdoor"))
    add_accounts(store, {"ann1": "annotator", "ann2": "annotator", "rev": "reviewer"})
    for user, values in {"ann1": ["indoor", "indoor"], "ann2": ["indoor", "outdoor"]}.items():
        shown = annotate.next_item(fake_predictor, job.id, Request(user))
        for value in values:
            shown = annotate.submit(fake_predictor, job.id, shown.item["value"], "", value, Request(user))
    return job


def test_annotate_shows_a_label_set_item_and_the_progress(tmp_path):
    store = default_store()
    job = make_job(
        store, make_images(tmp_path / "imgs", 2), task="video", labels=("indoor", "outdoor"), overlap=1
    )
    add_accounts(store, {"ann": "annotator"})
    shown = annotate.next_item(fake_predictor, job.id, Request("ann"))
    assert isinstance(shown, annotate.ItemShown) and len(shown) == 8
    assert shown.item["visible"] and isinstance(shown.item["value"], int)
    assert shown.choice["visible"] and shown.choice["choices"] == ["indoor", "outdoor"]
    assert not shown.text["visible"] and shown.prompt == ""
    assert shown.note.startswith("Pre-filled by **fake captioner**")
    assert shown.progress == "**0 / 2** labeled by you · 0 skipped · job: 0 / 2 complete"
    shown = annotate.skip(fake_predictor, job.id, shown.item["value"], Request("ann"))
    assert shown.progress.startswith("**0 / 2** labeled by you · 1 skipped")
    for _ in range(2):
        shown = annotate.submit(fake_predictor, job.id, shown.item["value"], "", "outdoor", Request("ann"))
    assert shown.note == annotate.DONE and shown.progress.endswith("job: 2 / 2 complete")
    assert shown.item == {"__type__": "update", "value": None, "visible": False}  # no "Item # 0" left


def test_a_vqa_item_shows_its_question(tmp_path):
    store = default_store()
    job = make_job(store, make_images(tmp_path / "imgs", 1), task="vqa", prompts=("what colour?",), overlap=1)
    add_accounts(store, {"ann": "annotator"})
    shown = annotate.next_item(fake_predictor, job.id, Request("ann"))
    assert shown.prompt == "**Question:** what colour?" and shown.text["visible"]


def test_review_and_dashboard_show_the_disagreement_and_the_agreement(disputed_job):
    table = review.show_disagreements(disputed_job.id, Request("rev"))
    assert list(table.columns) == ["item", "file", "labels"] and len(table) == 1  # video items ask nothing
    assert table.iloc[0]["labels"] == "ann1: indoor | ann2: outdoor"
    item_id = int(table.iloc[0]["item"])
    shown = review.open_disagreement(disputed_job.id, item_id, Request("rev"))
    assert shown.accepted["choices"] == ["indoor", "outdoor"] and shown.written == ""
    assert shown.prompt["visible"] is False  # a video item asks nothing: no "Question / query" box
    assert shown.image["visible"] and shown.video["visible"] is False  # frames (images) of a video job
    jobs_table, per_annotator, distribution, agreement = dashboard.dashboard(disputed_job.id, Request("rev"))
    assert jobs_table.iloc[0]["open disagreements"] == 1 and jobs_table.iloc[0]["complete"] == "2 / 2"
    assert per_annotator.value["data"] == [["ann1", 2], ["ann2", 2]]
    assert distribution.value["data"] == [["indoor", 3], ["outdoor", 1]]
    # count axes: whole-number ticks (a range of at least 0-5 steps by items; labels as integers)
    assert per_annotator.y_lim == distribution.y_lim == [0, dashboard.COUNT_AXIS_MIN]
    assert per_annotator.y_axis_format == distribution.y_axis_format == "d"
    assert agreement.startswith("**Fleiss' kappa:** ") and "| ann1 · ann2 | 2 |" in agreement
    assert "Cohen's kappa" in agreement

    message, table, *panel = review.save_decision(disputed_job.id, item_id, "outdoor", "", Request("rev"))
    assert message == f"Saved the final label of item #{item_id}: **outdoor**. {review.NOTHING_LEFT}"
    assert table.empty and review.Opened(*panel).image["value"] is None  # the decided item is off screen
    assert review.Opened(*panel).item["visible"] is False
    with pytest.raises(Exception, match="needs the reviewer role"):
        review.show_disagreements(disputed_job.id, Request("ann1"))


def disputed(tmp_path, task: str, count: int, prompts: tuple[str, ...] = ()):
    """A job of `task` whose `count` items the two annotators all labeled differently."""
    store = default_store()
    job = make_job(store, make_images(tmp_path / "imgs", count), task=task, prompts=prompts)
    add_accounts(store, {"ann1": "annotator", "ann2": "annotator", "rev": "reviewer"})
    for user in ("ann1", "ann2"):
        shown = annotate.next_item(fake_predictor, job.id, Request(user))
        for _ in range(count):
            item = shown.item["value"]
            shown = annotate.submit(fake_predictor, job.id, item, f"{user} says {item}", None, Request(user))
    return job


def test_a_decision_moves_the_review_panel_to_the_next_disputed_item(tmp_path):
    job = disputed(tmp_path, "caption", 3)
    rows = review.show_disagreements(job.id, Request("rev"))
    first, second, third = (int(i) for i in rows["item"])
    shown = review.open_disagreement(job.id, second, Request("rev"))
    assert shown.item["value"] == second and shown.prompt["visible"] is False  # captions ask no question
    message, rows, *panel = review.save_decision(job.id, second, None, "a final caption", Request("rev"))
    assert message.endswith(f"Next: item #{third}.") and list(rows["item"]) == [first, third]
    shown = review.Opened(*panel)
    assert shown.item["value"] == third and shown.image["value"] is not None and shown.written == ""
    assert shown.accepted["choices"] == [f"ann1 says {third}", f"ann2 says {third}"]
    message, rows, *panel = review.save_decision(job.id, third, f"ann1 says {third}", "", Request("rev"))
    assert review.Opened(*panel).item["value"] == first  # past the last one: back to the first left
    message, rows, *panel = review.save_decision(job.id, first, None, "done", Request("rev"))
    assert message.endswith(review.NOTHING_LEFT) and rows.empty
    assert review.Opened(*panel).image["value"] is None


def test_a_vqa_review_shows_the_items_question(tmp_path):
    job = disputed(tmp_path, "vqa", 1, prompts=("what colour?",))
    table = review.show_disagreements(job.id, Request("rev"))
    assert list(table.columns) == review.DISPUTE_COLUMNS and table.iloc[0]["prompt"] == "what colour?"
    item = int(table["item"][0])
    shown = review.open_disagreement(job.id, item, Request("rev"))
    assert shown.prompt == {
        "__type__": "update",
        "value": "what colour?",
        "visible": True,
        "label": "Question",
    }


def test_no_agreement_before_two_labels():
    summary = dashboard.stats.AgreementSummary("exact match", "exact match", None, 0, [])
    assert dashboard.agreement_text(summary) == "**exact match:** not yet — no item has two labels."


def test_dashboard_shows_how_often_the_prefill_matched_the_final_label(disputed_job):
    line, table = dashboard.prefill_match(disputed_job.id, Request("rev"))
    # Item 0 is agreed ("indoor"; the fake model pre-filled "prediction for img000.png"), item 1 disputed.
    assert line == (
        "**Pre-fill matched the final label:** 0 / 1 (0%) of settled items · by model version: v1 0 / 1 (0%)"
    )
    assert list(table.columns) == dashboard.PREFILL_COLUMNS
    assert table.values.tolist() == [["job", "fake captioner", "v1", 1, 0, "0%"]]
    assert dashboard.prefill_match(None, Request("rev"))[1].values.tolist() == table.values.tolist()
    with pytest.raises(Exception, match="needs the reviewer role"):
        dashboard.prefill_match(disputed_job.id, Request("ann1"))
