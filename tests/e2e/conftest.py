"""Browser tests: the real app (`python app.py`) driven by Playwright in Debian's Chromium.

Chromium is found at `MMDEMO_CHROMIUM`, `/usr/bin/chromium` or on PATH (`apt-get install chromium`).
Playwright's own browser download is not used. Screenshots go to `MMDEMO_SCREENSHOT_DIR`
(default `test-artifacts/screenshots`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, free_port

# Models load on first use on a shared 2-core CI machine: give the page time.
expect.set_options(timeout=60_000)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("MMDEMO_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@dataclass
class RunningApp:
    url: str
    data_dir: Path
    index_dir: Path


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = Path(os.environ.get("MMDEMO_SCREENSHOT_DIR", ROOT / "test-artifacts" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def serve_app_py(root: Path) -> Iterator[RunningApp]:
    """`python app.py` as a user starts it (auto profile: lite here, offline), on a free port, with its
    data and index folders under `root` (put accounts or jobs in `root / "data"` before calling)."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "MMDEMO_DATA_DIR": str(root / "data"),
        "MMDEMO_INDEX_DIR": str(root / "index"),
        "MMDEMO_PROFILE": "auto",  # a unit test's `mmdemo --profile tiny` may have exported another one
        # The first search builds the sample index in front of the user (the tests check that path); the
        # background warm-up, which would build it first, is tested in tests/test_retrieval.py.
        "MMDEMO_WARMUP": "0",
    }
    env.pop("MMDEMO_PROFILE", None)  # the default (auto), even after a test set --profile in this process
    log = (root / "app.log").open("w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = (root / "app.log").read_text()
                    raise RuntimeError(f"app.py did not start; its output:\n{output}") from None
                time.sleep(0.3)
        yield RunningApp(url=url, data_dir=root / "data", index_dir=root / "index")
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app without accounts: an open demo."""
    with serve_app_py(tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        message = "Chromium not found: `apt-get install chromium` or set MMDEMO_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app: RunningApp):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app.url)
    page.wait_for_selector("text=mmdemo")
    yield page
    context.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
