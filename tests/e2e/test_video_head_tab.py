"""The Video tab with a fine-tuned head: a new version is used without a restart, named in the notes, and
the Status tab's rollback takes it away again."""

from __future__ import annotations

from playwright.sync_api import expect

from mmdemo.data import Store
from mmdemo.serving.models.librosa_audio import LibrosaFeatures
from tests.conftest import ROOT
from tests.e2e.conftest import open_tab
from tests.test_finetune_video import save_head_version

COFFEE_CLIP = ROOT / "assets" / "videos" / "coffee.mp4"
LABELS = ["a violin", "a tractor", "a penguin"]


def upload_and_classify(page) -> None:
    open_tab(page, "Video")
    page.locator("#video-input input[type=file]").set_input_files(str(COFFEE_CLIP))
    expect(page.locator("#video-input video")).to_be_visible()
    page.locator("#video-labels textarea").fill("\n".join(LABELS))
    page.locator("#video-classify").click()


def test_the_tab_names_the_fine_tuned_version_and_rollback_removes_it(page, app, screenshot_dir):
    store = Store(app.data_dir / "mmdemo.db")
    try:
        # trained while the app runs; lite's sound features are the head's only input here
        version = save_head_version(
            store, LABELS, {"audio": "librosa log-mel/MFCC statistics"}, dim=LibrosaFeatures.dim
        )
    finally:
        store.close()
    upload_and_classify(page)
    notes = page.locator("#video-notes")
    expect(notes).to_contain_text(f"fine-tuned {version}")
    expect(notes).to_contain_text("fusion weights learned in training")
    expect(page.locator("#video-visual")).to_contain_text("not scored")
    expect(notes).to_contain_text("trained without frames")
    page.screenshot(path=str(screenshot_dir / "video-fine-tuned.png"), full_page=True)

    open_tab(page, "Status")
    page.get_by_label("Task").click()
    page.get_by_role("option", name="video").click()
    page.locator("#rollback-button").click()
    expect(page.get_by_text("now serves")).to_contain_text("video now serves base")

    open_tab(page, "Video")  # the same clip and labels, classified again
    page.locator("#video-classify").click()
    expect(notes).to_contain_text("zero-shot")  # only the new run can say so
    expect(notes).not_to_contain_text("fine-tuned")
