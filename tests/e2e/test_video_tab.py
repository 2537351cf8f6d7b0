from __future__ import annotations

import re

from playwright.sync_api import expect

from mmdemo.data import Store
from tests.conftest import ROOT
from tests.e2e.conftest import open_tab

COFFEE_CLIP = ROOT / "assets" / "videos" / "coffee.mp4"


def test_upload_classify_and_correct_a_clip(page, app, screenshot_dir):
    open_tab(page, "Video")
    expect(page.locator("#video-labels textarea")).to_have_value(re.compile("a cup of coffee"))
    # lite: nothing scores the sound, so its weight slider is off and says why
    sound_weight = page.locator("#video-audio-weight")
    expect(sound_weight).to_contain_text("not used: lite")
    expect(sound_weight.locator("input[type=range]")).to_be_disabled()
    page.locator("#video-input input[type=file]").set_input_files(str(COFFEE_CLIP))
    expect(page.locator("#video-input video")).to_be_visible()
    page.locator("#video-classify").click()

    fused = page.locator("#video-fused")
    expect(fused).to_contain_text("a cup of coffee")
    expect(page.locator("#video-visual")).to_contain_text("a cup of coffee")
    expect(page.locator("#video-audio")).to_contain_text("not scored")
    notes = page.locator("#video-notes")
    expect(notes).to_contain_text("Prediction #")
    expect(notes).to_contain_text("trained head")  # lite: the sound cannot vote yet, and the page says so

    page.locator("#video-new-label textarea, #video-new-label input").first.fill("an espresso")
    page.locator("#video-correct").click()
    expect(page.locator("#video-correction-message")).to_contain_text(re.compile(r"Saved as correction #\d+"))

    page.locator("#video-set-name textarea, #video-set-name input").first.fill("breakfast")
    page.get_by_role("button", name="Save label set").click()
    expect(page.get_by_text("Saved label set")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "video.png"), full_page=True)

    store = Store(app.data_dir / "mmdemo.db")
    try:
        correction = store.corrections(task="video")[-1]
        assert correction.output == {"label": "an espresso", "in_label_set": False}
        prediction = store.prediction(correction.prediction_id)
        assert re.fullmatch(r"anonymous:[0-9a-f]{16}", correction.user) and correction.user == prediction.user
        assert prediction.output["fused"][0]["label"] == "a cup of coffee"
        assert len(prediction.params["timestamps"]) == 8 and prediction.profile == "lite"
        assert store.media(prediction.media_id).duration_s > 4
        assert "breakfast" in store.label_set_names()
    finally:
        store.close()
