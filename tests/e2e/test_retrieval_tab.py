from __future__ import annotations

import json
import re
import sqlite3

from PIL import Image
from playwright.sync_api import expect

from tests.conftest import ASSETS


def judgements(app) -> list[dict]:
    with sqlite3.connect(app.data_dir / "mmdemo.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM judgements ORDER BY id")]


def test_search_judge_search_by_result_and_add_images(page, app, screenshot_dir, tmp_path):
    summary = page.locator("#retrieval-summary")
    gallery = page.locator("#retrieval-gallery")
    selection = page.locator("#retrieval-selection")
    thumbnails = gallery.locator(".thumbnail-item")

    # Search by text: the first search builds the default index of the sample photos.
    page.get_by_label("Describe what you are looking for").fill("a cup of coffee")
    page.get_by_role("button", name="Search by text").click()
    expect(summary).to_contain_text("Built the default index of 26 sample photos")
    expect(summary).to_contain_text("8 results")
    expect(thumbnails).to_have_count(8)
    expect(thumbnails.first).to_contain_text(re.compile(r"#1 \d\.\d{3} · coffee\.jpg"))

    # Pick the second result and judge it relevant.
    thumbnails.nth(1).click()
    expect(selection).to_contain_text("Picked #2")
    page.get_by_role("button", name="✓ Relevant", exact=True).click()
    expect(selection).to_contain_text("Saved: #2")
    expect(thumbnails.nth(1)).to_contain_text("✓ #2")
    picked_name = thumbnails.nth(1).inner_text().split(" · ", 1)[1].strip()
    page.screenshot(path=str(screenshot_dir / "retrieval.png"), full_page=True)

    # Search by that result: it ranks itself first; judge the third result not relevant.
    page.get_by_role("button", name="Search by this image").click()
    expect(summary).to_contain_text("results for the image")
    expect(thumbnails.first).to_contain_text(re.compile(rf"#1 \d\.\d{{3}} · {re.escape(picked_name)}"))
    thumbnails.nth(2).click()
    expect(selection).to_contain_text("Picked #3")
    page.get_by_role("button", name="✗ Not relevant", exact=True).click()
    expect(selection).to_contain_text("is not relevant")

    rows = judgements(app)
    assert [(r["query_text"], r["rank"], r["relevant"]) for r in rows] == [
        ("a cup of coffee", 2, 1),
        (None, 3, 0),
    ]
    assert rows[1]["query_media_id"] == rows[0]["result_media_id"]  # the query was the judged result
    [visitor] = {r["user"] for r in rows}  # one anonymous browser session judged both
    assert re.fullmatch(r"anonymous:[0-9a-f]{16}", visitor) and all(r["embedder_name"] for r in rows)

    # Search by an uploaded image.
    page.locator("input[type=file]").first.set_input_files(str(ASSETS / "rocket.jpg"))
    expect(thumbnails.first).to_contain_text(re.compile(r"#1 \d\.\d{3} · rocket\.jpg"))

    # Add two images to the index: one new photo and a broken file, which is reported by name.
    new_photo = tmp_path / "cat_crop.png"
    Image.open(ASSETS / "cat.jpg").crop((0, 0, 200, 200)).save(new_photo)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    page.get_by_text("Add images to the index").click()
    page.locator("#retrieval-add-files input[type=file]").set_input_files([str(new_photo), str(broken)])
    page.get_by_role("button", name="Add to index").click()
    added = page.locator("#retrieval-added")
    expect(added).to_contain_text("Added 1 image(s)")
    expect(added).to_contain_text("could not be read: 1")
    expect(added).to_contain_text("broken.jpg")
    expect(added).to_contain_text("holds 27 images")
    manifest = json.loads((app.index_dir / "default" / "manifest.json").read_text())
    assert manifest["count"] == 27


def test_result_number_and_empty_query(page, screenshot_dir):
    """Defect 7 of issue 16: "Result #" showed 0 before a pick and took the loading text; an empty search
    painted red Error pills on the outputs."""
    rank = page.locator("#retrieval-rank")
    expect(rank).to_be_hidden()  # nothing picked: no "0"
    page.get_by_role("button", name="Search by text").click()  # nothing typed
    expect(page.get_by_text("Type what you are looking for, e.g.")).to_be_visible()  # a hint
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / "retrieval-empty-query.png"), full_page=True)
    page.get_by_label("Describe what you are looking for").fill("a cat")
    page.get_by_role("button", name="Search by text").click()
    thumbnails = page.locator("#retrieval-gallery .thumbnail-item")
    expect(thumbnails).to_have_count(8)
    expect(rank).to_be_hidden()
    thumbnails.nth(2).click()
    expect(rank).to_be_visible()
    expect(rank.locator("input")).to_have_value("3")
    page.screenshot(path=str(screenshot_dir / "retrieval-picked.png"), full_page=True)
    page.get_by_label("Describe what you are looking for").fill("a rocket launch")
    page.get_by_role("button", name="Search by text").click()
    # the loading text goes on the results only, never inside the small box; a new list: nothing picked
    expect(page.locator("#retrieval-rank .progress-text, #retrieval-rank .eta-bar")).to_have_count(0)
    expect(rank).to_be_hidden()
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / "retrieval-no-pick.png"), full_page=True)
    # Judging before picking one of the new results: a hint, no Error pill.
    page.get_by_role("button", name="✓ Relevant").click()
    expect(page.get_by_text("Click a result to judge it or to search by it.").first).to_be_visible()
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)
