from __future__ import annotations

import re

from playwright.sync_api import expect

from mmdemo.data import Store
from tests.conftest import ASSETS
from tests.e2e.conftest import open_tab


def test_caption_correct_then_ask_and_see_history(page, app, screenshot_dir):
    open_tab(page, "Captioning")
    page.locator("#caption-image input[type=file]").set_input_files(str(ASSETS / "coffee.jpg"))
    page.get_by_role("button", name="Caption", exact=True).click()
    caption = page.locator("#caption-text textarea")
    expect(caption).to_have_value(re.compile("espresso"))
    about = page.locator("#caption-about")
    expect(about).to_contain_text("profile: lite")
    expect(about).to_contain_text("baseline")
    expect(about).to_contain_text(re.compile(r"latency: \d+ ms"))
    caption.fill("a cup of espresso on a red saucer")
    page.locator("#caption-save").click()
    saved = page.locator("#caption-saved")
    expect(saved).to_contain_text(re.compile(r"saved as correction #\d+"))
    page.screenshot(path=str(screenshot_dir / "captioning.png"), full_page=True)
    # Another image: the caption, the model line and "saved" belong to the old one and go
    page.locator("#caption-image input[type=file]").set_input_files(str(ASSETS / "cat.jpg"))
    expect(caption).to_have_value("")
    expect(about).not_to_contain_text("latency")
    expect(saved).not_to_contain_text("saved as correction")
    page.get_by_role("button", name="Caption", exact=True).click()
    expect(caption).to_have_value(re.compile("cat"))

    open_tab(page, "VQA")
    page.locator("#vqa-image input[type=file]").set_input_files(str(ASSETS / "cat.jpg"))
    question = page.locator("#vqa-question textarea")
    question.fill("What is this?")
    question.press("Enter")
    answer = page.locator("#vqa-answer textarea")
    expect(answer).to_have_value(re.compile("cat"))
    question.fill("Is there a dog in the picture?")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(answer).to_have_value("no")
    history = page.locator("#vqa-history")
    expect(history).to_contain_text("Is there a dog in the picture?")
    expect(history).to_contain_text("What is this?")
    answer.fill("no, a cat")
    page.locator("#vqa-save").click()
    expect(page.locator("#vqa-saved")).to_contain_text(re.compile(r"saved as correction #\d+"))
    expect(history).to_contain_text("no, a cat")
    page.screenshot(path=str(screenshot_dir / "vqa.png"), full_page=True)

    store = Store(app.data_dir / "mmdemo.db")
    try:
        caption_fix = store.corrections(task="caption")[-1]
        assert caption_fix.output == "a cup of espresso on a red saucer"
        assert "espresso" in store.prediction(caption_fix.prediction_id).output
        answer_fix = store.corrections(task="vqa")[-1]
        asked = store.prediction(answer_fix.prediction_id)
        assert answer_fix.output == {"answer": "no, a cat"}
        assert asked.input["question"] == "Is there a dog in the picture?" and asked.output["answer"] == "no"
        # an anonymous visitor is one browser session: it asked, and it corrected its own answer
        assert asked.profile == "lite" and re.fullmatch(r"anonymous:[0-9a-f]{16}", asked.user)
        assert answer_fix.user == asked.user
        assert len(store.predictions_for_media(asked.media_id, "vqa")) == 2
    finally:
        store.close()


def test_bad_input_shows_a_message_not_a_traceback(page):
    open_tab(page, "VQA")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.get_by_text("no image given: upload one, or pick an example")).to_be_visible()
    page.locator("#vqa-image input[type=file]").set_input_files(str(ASSETS / "cat.jpg"))
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.get_by_text("the question is empty")).to_be_visible()


def test_batch_captioning_lists_every_file_and_shows_whole_images_with_captions(page, screenshot_dir):
    """Defect 8 of issue 16: the file list showed 2 of 3 files; the gallery cropped images, hid captions."""
    open_tab(page, "Captioning")
    page.get_by_text("Several images at once").click()
    names = ["coffee.jpg", "motorcycle.jpg", "rocket.jpg"]
    page.locator("#caption-batch-files input[type=file]").set_input_files([str(ASSETS / n) for n in names])
    files = page.locator("#caption-batch-files")
    expect(files.locator("tr.file")).to_have_count(3)
    files.scroll_into_view_if_needed()
    for name in names:  # every file is in view, none behind a scroll bar
        expect(files.get_by_role("row", name=re.compile(re.escape(name)))).to_be_in_viewport(ratio=1)
    page.get_by_role("button", name="Caption all").click()
    gallery = page.locator("#caption-batch-gallery")
    thumbnails = gallery.locator(".thumbnail-item")
    expect(thumbnails).to_have_count(3)
    captions = gallery.locator(".caption-label")
    expect(captions).to_have_count(3)
    for index in range(3):
        expect(captions.nth(index)).to_be_visible()
        assert captions.nth(index).inner_text().strip()
    fit = thumbnails.first.locator("img").evaluate("img => getComputedStyle(img).objectFit")
    assert fit == "contain"
    gallery.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "captioning-batch.png"), full_page=True)
