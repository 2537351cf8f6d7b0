"""What a new visitor meets in an open demo (issue 16, defects 2-4): the VQA examples answer sensibly, the
Labeling tab says what it is for and offers a sample job, and a caption correction never shows a stale
"saved" line."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from mmdemo.labeling import sample
from mmdemo.ui import vqa
from tests.conftest import ASSETS
from tests.e2e.conftest import open_tab


def error_pills(page) -> int:
    """The red "Error" badges Gradio paints on an event's outputs when it fails."""
    return page.get_by_text("Error", exact=True).count()


def test_the_vqa_examples_yes_no_questions_are_answered_yes(page, screenshot_dir):
    open_tab(page, "VQA")
    answer = page.locator("#vqa-answer textarea")
    question = page.locator("#vqa-question textarea")
    for name, asked in vqa.EXAMPLES:
        if not asked.lower().startswith("is there"):
            continue
        page.locator("#vqa-image input[type=file]").set_input_files(str(ASSETS / f"{name}.jpg"))
        expect(answer).to_have_value("")  # the new image cleared the last answer
        question.fill(asked)
        question.press("Enter")
        expect(answer).to_have_value("yes")
    page.screenshot(path=str(screenshot_dir / "vqa-example-yes.png"), full_page=True)


def test_the_open_demo_labeling_tab_explains_itself_and_starts_a_sample_job(page, app, screenshot_dir):
    open_tab(page, "Labeling")
    expect(page.locator("#labeling-about")).to_contain_text("Pick a job and press Next item")
    # pressing on with no job is a normal state: a hint, no red error pills
    page.locator("#labeling-submit").click()
    page.get_by_role("button", name="Next item").click()
    expect(page.get_by_text("Pick a job first").first).to_be_visible()
    expect(page.locator("#labeling-progress")).to_contain_text("Pick a job")
    assert error_pills(page) == 0
    page.screenshot(path=str(screenshot_dir / "labeling-open-demo.png"), full_page=True)

    start = page.locator("#labeling-sample-start")
    expect(start).to_be_visible()
    expect(page.locator("#labeling-sample-intro")).to_contain_text("open demo")
    start.click()
    expect(page.locator("#labeling-progress")).to_contain_text(
        re.compile(rf"0 / {len(sample.PHOTOS)}\*?\*? labeled by you")
    )
    expect(page.locator("#labeling-note")).to_contain_text("Pre-filled by")
    text = page.locator("#labeling-text textarea")
    expect(text).not_to_have_value("")  # the model's caption
    text.fill("a cat sitting on a floor")
    page.locator("#labeling-submit").click()
    expect(page.locator("#labeling-progress")).to_contain_text(re.compile(r"1 / \d+\*?\*? labeled by you"))
    assert error_pills(page) == 0
    page.screenshot(path=str(screenshot_dir / "labeling-sample-job.png"), full_page=True)


def test_an_empty_caption_correction_leaves_no_stale_saved_line(page):
    open_tab(page, "Captioning")
    page.locator("#caption-image input[type=file]").set_input_files(str(ASSETS / "cat.jpg"))
    page.get_by_role("button", name="Caption", exact=True).click()
    caption = page.locator("#caption-text textarea")
    expect(caption).not_to_have_value("")
    caption.fill("a cat on a rug")
    page.locator("#caption-save").click()
    saved = page.locator("#caption-saved")
    expect(saved).to_contain_text(re.compile(r"saved as correction #\d+"))
    caption.fill("")
    page.locator("#caption-save").click()
    expect(page.get_by_text(re.compile("caption", re.IGNORECASE)).last).to_be_visible()
    expect(saved).not_to_contain_text("saved as correction")
