"""Two people at once: an admin creates a job in the browser, an annotator signs in and labels an item."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from mmdemo.data import Store
from mmdemo.labeling import jobs
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
    store.close()
    with serve_app_py(root) as running:
        yield running, root / "photos"


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
    open_job(annotator, "Annotate", "labeling-job", "photos", "Next item")
    expect(annotator.locator("#labeling-note")).to_contain_text("Pre-filled by")
    expect(annotator.locator("#labeling-progress")).to_contain_text("0 / 3")
    annotator.screenshot(path=str(screenshot_dir / "labeling.png"), full_page=True)
    label = annotator.locator("#labeling-text textarea")
    assert label.input_value()  # the model's caption is there to accept or correct
    label.fill(label.input_value().removeprefix("a photo of "))  # trims the model's caption
    label.press("Enter")
    expect(annotator.locator("#labeling-progress")).to_contain_text("1 / 3 labeled by you")
    for section in ("Review", "Dashboard", "Admin"):  # long loaded by now: hidden for an annotator
        expect(annotator.get_by_role("tab", name=section)).to_be_hidden()

    open_job(admin, "Dashboard", "labeling-dashboard-job", "photos", "Refresh")
    expect(admin.locator("#labeling-jobs")).to_contain_text("photos")
    expect(admin.locator("#labeling-agreement")).to_contain_text("exact match")
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
