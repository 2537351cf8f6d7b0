"""Fixtures shared by the captioning and VQA tests."""

from __future__ import annotations

import pytest

from mmdemo.serving import registry


@pytest.fixture(autouse=True)
def profile_flag_does_not_leak(monkeypatch):
    """`main(["--profile", ...])` exports MMDEMO_PROFILE; later tests and app subprocesses must not see it."""
    monkeypatch.delenv("MMDEMO_PROFILE", raising=False)


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text with an image suffix")
    return str(path)


@pytest.fixture
def tiny_process_registry():
    """The process-wide registry (what the tabs use) on the tiny profile, for one test."""
    registry.configure("tiny", device="cpu")
    yield
    registry.configure()
