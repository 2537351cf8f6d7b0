"""Two people at once: an admin creates a job in the browser, an annotator signs in and labels an item."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from mmdemo.data import Store
from mmdemo.labeling import jobs, queue
from mmdemo.services import Services
from tests.conftest import ASSETS
from tests.e2e.conftest import open_tab, serve_app_py
from tests.labeling_helpers import PASSWORD, add_accounts, make_images


@pytest.fixture(scope="module")
def app_with_accounts(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-labeling")
    store = Store(root / "data" / "mmdemo.db")
    add_accounts(store, {"boss": "admin", "ann": "annotator"}, password=PASSWORD)
    photos = root / "photos"  # sample photos, so the model's pre-fill (and the screenshot) mean something
    photos.mkdir()
    for name in ("coffee.jpg", "cat.jpg", "rocket.jpg"):
        shutil.copyfile(ASSETS / name, photos / name)
    frames = jobs.folder_files(make_images(root / "frames", 2), "video")
    jobs.create_job(None, "scenes", "video", frames, labels=["indoor", "outdoor", "studio"], store=store)
    label_clips_job(store, root / "clips")
    later_job(store, root / "later")
    store.close()
    with serve_app_py(root) as running:
        yield running, root / "photos"


TRAIN_CLASSES = {
    "cat": ("cat.jpg", 330.0),
    "coffee": ("coffee.jpg", 1200.0),
    "flower": ("flower.jpg", 3500.0),
}


def label_clips_job(store: Store, folder: Path) -> None:
    """A video job ("augmented") over one-second clips made from flipped and cropped sample photos of three
    classes (a tone per class as their sound), labeled by two annotators through the queue with the served
    model's pre-fill, as in the browser; one item is disputed."""
    import numpy as np
    from PIL import Image, ImageOps

    from mmdemo.media.video import write_clip
    from tests.video_helpers import tone

    folder.mkdir()
    truth = {}
    for label, (name, hz) in TRAIN_CLASSES.items():
        photo = Image.open(ASSETS / name).convert("RGB")
        width, height = photo.size
        crop = photo.crop((width // 8, height // 8, width * 7 // 8, height * 7 // 8))
        for variant, image in enumerate((photo, ImageOps.mirror(photo), crop, ImageOps.mirror(crop))):
            frame = np.asarray(image.resize((160, 120)))
            write_clip(folder / f"{label}{variant}.mp4", [frame] * 4, 4, tone(1.0, hz))
            truth[f"{label}{variant}.mp4"] = label
    add_accounts(store, {"ann2": "annotator"}, password=PASSWORD)
    files = jobs.folder_files(folder, "video")
    job = jobs.create_job(
        None, "augmented", "video", files, labels=list(TRAIN_CLASSES), overlap=2, store=store
    )
    predictor = queue.ModelPredictor(Services.create(store=store))  # the served model, as the app's
    for user in ("ann", "ann2"):
        while (view := queue.next_item(job.id, user, predictor=predictor, store=store)) is not None:
            value = truth[view.media.name]
            if user == "ann2" and view.item.position == 0:
                value = "coffee"  # a disagreement nobody has reviewed: not a settled label
            queue.submit(job.id, view.item.id, user, value, store=store)


def make_clips(folder: Path, variants: dict[str, object]) -> dict[str, str]:
    """One-second clips of the three classes' photos (a tone per class as their sound), one per variant
    (a function of the photo); file name -> class."""
    import numpy as np
    from PIL import Image

    from mmdemo.media.video import write_clip
    from tests.video_helpers import tone

    folder.mkdir()
    truth = {}
    for label, (name, hz) in TRAIN_CLASSES.items():
        photo = Image.open(ASSETS / name).convert("RGB")
        for variant, change in variants.items():
            frame = np.asarray(change(photo).resize((160, 120)))
            write_clip(folder / f"{label}-{variant}.mp4", [frame] * 4, 4, tone(1.0, hz))
            truth[f"{label}-{variant}.mp4"] = label
    return truth


LATER_TRUTH: dict[str, str] = {}


def later_job(store: Store, folder: Path) -> None:
    """A second video job ("later", uncertainty order, overlap 2) over new views of the three classes;
    before any training, both annotators label its three least-sure items, pre-filled by the base model.
    The rest wait for the version trained in the browser."""
    from PIL import ImageEnhance, ImageOps

    LATER_TRUTH.update(
        make_clips(
            folder,
            {
                "dark": lambda im: ImageEnhance.Brightness(im).enhance(0.6),
                "flipped": lambda im: ImageOps.flip(ImageOps.mirror(im)),
            },
        )
    )
    files = jobs.folder_files(folder, "video")
    job = jobs.create_job(
        None, "later", "video", files, labels=list(TRAIN_CLASSES), overlap=2, ordering="uncertainty",
        store=store,
    )  # fmt: skip
    predictor = queue.ModelPredictor(Services.create(store=store))  # the served (base) model
    for user in ("ann", "ann2"):
        for _ in range(3):
            view = queue.next_item(job.id, user, predictor=predictor, store=store)
            queue.submit(job.id, view.item.id, user, LATER_TRUTH[view.media.name], store=store)


def sign_in(browser, url: str, name: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#signed-in-as")).to_contain_text(f"Signed in as {name}")
    return page


def open_job(page, section: str, dropdown: str, job: str, button: str) -> None:
    """In a section of the Labeling tab, pick a job and press the section's button."""
    open_tab(page, "Labeling")
    open_tab(page, section)
    page.locator(f"#{dropdown} input").click()
    page.get_by_role("option", name=job).click()
    page.get_by_role("button", name=button).click()


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"#{dropdown} input").click()
    page.get_by_role("option", name=option).click()


def count_ticks(page, chart: str) -> list[str]:
    """The labels of a bar chart's count (y) axis, bottom up."""
    labels = page.locator(f"#{chart} g[aria-label^='Y-axis'] .role-axis-label text")
    expect(labels.first).to_be_visible()
    texts = labels.evaluate_all("els => els.map(e => e.textContent)")
    return sorted(texts, key=float)


def test_admin_creates_a_job_and_an_annotator_labels_it(browser, app_with_accounts, screenshot_dir):
    app, photos = app_with_accounts
    admin = sign_in(browser, app.url, "boss")
    annotator = sign_in(browser, app.url, "ann")
    expect(annotator.locator("#signed-in-as")).to_contain_text("(annotator)")

    open_tab(admin, "Labeling")
    for section in ("Review", "Dashboard", "Admin"):  # shown by role once the page has loaded
        expect(admin.get_by_role("tab", name=section)).to_be_visible()
    open_tab(admin, "Admin")
    expect(admin.locator("#labeling-accounts")).to_contain_text("ann")
    admin.get_by_label("Name").fill("photos")
    admin.get_by_label("Folder on the server").fill(str(photos))
    admin.get_by_label("Annotators per item (overlap)").fill("2")
    admin.get_by_role("button", name="Create job").click()
    expect(admin.get_by_text("Created job")).to_contain_text("3 items")

    annotator.reload()  # the job list is read when the page loads
    expect(annotator.locator("#signed-in-as")).to_contain_text("Signed in as ann")
    open_tab(annotator, "Labeling")
    expect(annotator.locator("#labeling-item")).to_be_hidden()  # no item yet: no "Item # 0"
    open_job(annotator, "Annotate", "labeling-job", "photos", "Next item")
    expect(annotator.locator("#labeling-note")).to_contain_text("Pre-filled by")
    expect(annotator.locator("#labeling-progress")).to_contain_text("0 / 3")
    expect(annotator.locator("#labeling-item input")).not_to_have_value("0")
    annotator.screenshot(path=str(screenshot_dir / "labeling.png"), full_page=True)
    label = annotator.locator("#labeling-text textarea")
    expect(label).not_to_have_value("")  # the model's caption is there to accept or correct
    label.fill(label.input_value().removeprefix("a photo of "))  # trims the model's caption
    label.press("Enter")
    expect(annotator.locator("#labeling-progress")).to_contain_text("1 / 3 labeled by you")
    for section in ("Review", "Dashboard", "Admin"):  # long loaded by now: hidden for an annotator
        expect(annotator.get_by_role("tab", name=section)).to_be_hidden()

    open_job(admin, "Dashboard", "labeling-dashboard-job", "photos", "Refresh")
    expect(admin.locator("#labeling-jobs")).to_contain_text("photos")
    expect(admin.locator("#labeling-agreement")).to_contain_text("exact match")
    # captions are free text: bars per length band, not one bar per unique caption
    expect(admin.get_by_text("Label length")).to_be_visible()
    for chart in ("labeling-per-annotator", "labeling-distribution"):  # one item labeled so far
        ticks = count_ticks(admin, chart)
        assert ticks == [str(n) for n in range(len(ticks))] and len(ticks) > 1  # 0, 1, 2 …: no "0.5"
    admin.screenshot(path=str(screenshot_dir / "labeling-dashboard.png"), full_page=True)


def test_a_job_from_a_querys_results_judges_them_against_the_query(browser, app_with_accounts):
    app, _ = app_with_accounts
    admin = sign_in(browser, app.url, "boss")
    open_tab(admin, "Labeling")
    open_tab(admin, "Admin")
    admin.get_by_label("Name").fill("coffee")
    pick(admin, "labeling-new-task", "retrieval")
    admin.locator("#labeling-new-query textarea").fill("a cup of coffee")
    admin.locator("#labeling-new-k input").fill("3")
    admin.get_by_role("button", name="Create job").click()
    expect(admin.get_by_text("Created job")).to_contain_text("3 items")

    annotator = sign_in(browser, app.url, "ann")
    open_job(annotator, "Annotate", "labeling-job", "coffee", "Next item")
    expect(annotator.locator("#labeling-prompt")).to_contain_text("Query: a cup of coffee")
    expect(annotator.locator("#labeling-choice")).to_be_visible()
    annotator.locator("#labeling-choice input[value='relevant']").check()
    annotator.get_by_role("button", name="Submit").click()
    expect(annotator.locator("#labeling-progress")).to_contain_text("1 / 3 labeled by you")


def test_label_set_items_can_be_labeled_from_the_keyboard(browser, app_with_accounts):
    app, _ = app_with_accounts
    annotator = sign_in(browser, app.url, "ann")
    open_job(annotator, "Annotate", "labeling-job", "scenes", "Next item")
    expect(annotator.locator("#labeling-choice")).to_be_visible()
    expect(annotator.locator("#labeling-progress")).to_contain_text("0 / 2")
    annotator.locator("#labeling-progress").click()  # focus off the job picker
    annotator.keyboard.press("3")
    expect(annotator.locator("#labeling-choice input[value='studio']")).to_be_checked()
    annotator.keyboard.press("Enter")
    expect(annotator.locator("#labeling-progress")).to_contain_text("1 / 2 labeled by you")
    store = Store(app.data_dir / "mmdemo.db")
    job = next(job for job in store.jobs() if job.name == "scenes")
    assert [(s.user, s.value) for s in store.submissions(job.id)] == [("ann", "studio")]


def test_an_admin_trains_from_the_admin_section_and_the_dashboard_shows_the_prefill_match(
    browser, app_with_accounts, screenshot_dir
):
    app, _ = app_with_accounts
    admin = sign_in(browser, app.url, "boss")
    open_tab(admin, "Labeling")
    open_tab(admin, "Admin")
    section = admin.locator("#train-section")
    section.scroll_into_view_if_needed()
    pick(admin, "train-task", "video")
    admin.locator("#train-jobs input").click()
    admin.get_by_role("option", name="augmented").click()
    admin.locator("#train-section h3").click()  # close the job list
    admin.get_by_label("Serve it even if it is not better").check()  # zero-shot may already be right
    admin.get_by_role("button", name="Start training").click()
    expect(admin.locator("#train-status")).to_contain_text("started by boss")
    # The worker trains in its own process: the report arrives by polling, the page stays usable.
    expect(admin.locator("#train-report")).to_contain_text("metric (validation)", timeout=400_000)
    expect(admin.locator("#train-status")).to_contain_text("video v1 accepted: served from now on")
    expect(admin.locator("#train-status")).to_contain_text("Now serving: v1")
    expect(admin.locator("#train-plot img")).to_be_visible()
    section.screenshot(path=str(screenshot_dir / "labeling-train.png"))

    open_job(admin, "Dashboard", "labeling-dashboard-job", "augmented", "Refresh")
    line = admin.locator("#labeling-prefill-match")
    expect(line).to_contain_text("Pre-fill matched the final label")
    expect(line).to_contain_text("of settled items")
    expect(admin.locator("#labeling-prefill-table")).to_contain_text("augmented")

    # The "later" job's other items: the queue re-scores them with v1 (a new version serves), so two
    # annotators label them from v1's pre-fills; its Dashboard line then reads base → v1.
    store = Store(app.data_dir / "mmdemo.db")
    later = next(job for job in store.jobs() if job.name == "later")
    for name in ("ann", "ann2"):
        annotator = sign_in(browser, app.url, name)
        open_job(annotator, "Annotate", "labeling-job", "later", "Next item")
        for done in range(4, 7):
            expect(annotator.locator("#labeling-note")).to_contain_text("(v1)")
            (shown,) = store.assigned_items(later.id, name, "assigned")  # the item on the annotator's screen
            truth = LATER_TRUTH[Path(store.media(shown.media_id).path).name]
            annotator.locator(f"#labeling-choice input[value='{truth}']").check()
            annotator.get_by_role("button", name="Submit").click()
            expect(annotator.locator("#labeling-progress")).to_contain_text(f"{done} / 6 labeled by you")
        annotator.context.close()
    open_job(admin, "Dashboard", "labeling-dashboard-job", "later", "Refresh")
    expect(line).to_contain_text(re.compile(r"by model version: base \d / 3 \(\d+%\) → v1 \d / 3 \(\d+%\)"))
    admin.screenshot(path=str(screenshot_dir / "labeling-dashboard-prefill.png"), full_page=True)


def test_a_review_decision_moves_on_and_clears_when_nothing_is_left(
    browser, app_with_accounts, screenshot_dir
):
    """Defect 8 of issue 16: the decided item stayed on screen; a "Question / query" box showed for jobs
    whose items ask nothing."""
    app, _ = app_with_accounts
    admin = sign_in(browser, app.url, "boss")
    open_job(admin, "Review", "labeling-review-job", "augmented", "Show disagreements")
    disputes = admin.locator("#labeling-disputes")
    expect(disputes).to_contain_text("ann2: coffee")  # where ann gave the clip's true label
    item = admin.locator("#labeling-review-item")
    expect(item).to_be_hidden()  # nothing open: no "Item # 0"
    disputes.get_by_test_id("cell-0-0").click()  # the first row (Gradio's grid cells, not its table)
    expect(item).to_be_visible()
    expect(admin.locator("#labeling-review-prompt")).to_be_hidden()  # a video job asks no question
    expect(admin.locator("#labeling-review-video video")).to_be_visible()  # the clip, not an empty image
    expect(admin.locator("#labeling-review-image")).to_be_hidden()
    admin.locator("#labeling-review-accept label").first.click()
    admin.screenshot(path=str(screenshot_dir / "labeling-review.png"), full_page=True)
    admin.locator("#labeling-review-save").click()
    decision = admin.locator("#labeling-review-decision")
    expect(decision).to_contain_text("Saved the final label")
    expect(decision).to_contain_text("Nothing left to review in this job.")
    expect(item).to_be_hidden()  # the decided item is off the screen
    expect(admin.locator("#labeling-review-video")).to_be_hidden()
    expect(admin.locator("#labeling-review-accept input")).to_have_count(0)
    expect(disputes.locator("tbody")).not_to_contain_text("ann2: coffee")
    admin.screenshot(path=str(screenshot_dir / "labeling-review-done.png"), full_page=True)
