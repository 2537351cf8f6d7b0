"""From a retrieval result to a caption and an answer: "Caption this" / "Ask about this".

Named to run after test_retrieval_tab.py, which expects to make the app's first search."""

from __future__ import annotations

import hashlib

from playwright.sync_api import expect

from mmdemo.data import Store
from tests.conftest import ASSETS
from tests.e2e.conftest import open_tab


def pick(page, index: int) -> str:
    """Click a result; returns its file name (captions read "#2 0.512 · cat.jpg")."""
    thumbnail = page.locator("#retrieval-gallery .thumbnail-item").nth(index)
    name = thumbnail.inner_text().split(" · ", 1)[1].strip()
    thumbnail.click()
    expect(page.locator("#retrieval-selection")).to_contain_text(f"Picked #{index + 1} {name}")
    return name


def newest_prediction_media(app, task: str) -> str:
    store = Store(app.data_dir / "mmdemo.db")
    try:
        return store.predictions(task)[-1].media_id
    finally:
        store.close()


def sha256(app, name: str) -> str:
    """The content hash of a result's file: a sample photo, or a copy the app kept under its data folder
    (named by its hash when a tab saw that photo first)."""
    path = next(path for path in (ASSETS / name, *app.data_dir.rglob(name)) if path.is_file())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_caption_this_and_ask_about_this_send_the_picked_image(page, app):
    open_tab(page, "Retrieval")
    page.get_by_label("Describe what you are looking for").fill("a cat")
    page.get_by_role("button", name="Search by text").click()
    expect(page.locator("#retrieval-gallery .thumbnail-item")).to_have_count(8)

    captioned = pick(page, 0)
    page.get_by_role("button", name="Caption this").click()
    expect(page.get_by_role("tab", name="Captioning")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#caption-image img")).to_be_visible()
    page.get_by_role("button", name="Caption", exact=True).click()
    expect(page.locator("#caption-about")).to_contain_text("Model:")
    expect(page.locator("#caption-text textarea")).not_to_have_value("")  # waits for it
    # The very file, not a re-encoding of it.
    assert newest_prediction_media(app, "caption") == sha256(app, captioned)

    open_tab(page, "Retrieval")
    asked = pick(page, 1)
    page.get_by_role("button", name="Ask about this").click()
    expect(page.get_by_role("tab", name="VQA")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#vqa-image img")).to_be_visible()
    question = page.locator("#vqa-question textarea")
    question.fill("What is this?")
    question.press("Enter")
    expect(page.locator("#vqa-history")).to_contain_text("What is this?")
    assert newest_prediction_media(app, "vqa") == sha256(app, asked)


def test_sending_without_a_picked_result_says_what_to_do(page):
    open_tab(page, "Retrieval")
    page.get_by_role("button", name="Caption this").click()
    expect(page.get_by_text("Search first, then click a result.")).to_be_visible()
    expect(page.get_by_role("tab", name="Retrieval")).to_have_attribute("aria-selected", "true")
