from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import open_tab


def test_status_tab_lists_every_task_and_why(page, screenshot_dir):
    open_tab(page, "Status")
    table = page.locator("#status-table")
    for task in ("embed", "caption", "vqa", "audio"):
        expect(table).to_contain_text(task)
    expect(table).to_contain_text("unreachable")  # offline: auto picked lite and says why
    expect(page.get_by_text("Profile:")).to_be_visible()
    # a composite model (lite's ConSE) owns no weights: the row names its parts instead of "parameters 0"
    expect(table).to_contain_text("its weights are those of")
    page.screenshot(path=str(screenshot_dir / "status.png"), full_page=True)
