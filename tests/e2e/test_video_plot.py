"""Defect 1 of issue 16: a later plot on the same page draws its own labels, not the first result's."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.e2e.conftest import open_tab

CLIPS = ROOT / "assets" / "videos"


def legend(page) -> list[str]:
    return page.locator("#video-plot .role-legend-label text").evaluate_all(
        "els => els.map(e => e.textContent)"
    )


def test_a_second_classification_plots_its_own_labels(page, app, screenshot_dir):
    open_tab(page, "Video")
    page.locator("#video-input input[type=file]").set_input_files(str(CLIPS / "coffee.mp4"))
    expect(page.locator("#video-input video")).to_be_visible()
    page.locator("#video-classify").click()
    expect(page.locator("#video-fused")).to_contain_text("a cup of coffee")
    expect(page.locator("#video-plot .role-legend-label text").first).to_be_visible()
    assert "a cup of coffee" in legend(page)

    page.locator("#video-labels textarea").fill("a cat\na dog")
    page.locator("#video-classify").click()
    expect(page.locator("#video-fused")).to_contain_text("a cat")
    expect(page.locator("#video-plot .role-legend-label text", has_text="a cat")).to_be_visible()
    assert sorted(legend(page)) == ["a cat", "a dog"]
    assert page.locator("#video-plot .mark-line path").count() == 2  # a line per label, none missing
    page.screenshot(path=str(screenshot_dir / "video-plot-second.png"), full_page=True)
