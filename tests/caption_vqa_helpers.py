"""Fixtures shared by the captioning and VQA tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def profile_flag_does_not_leak(monkeypatch):
    """`main(["--profile", ...])` exports MMDEMO_PROFILE; later tests and app subprocesses must not see it."""
    monkeypatch.delenv("MMDEMO_PROFILE", raising=False)


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text with an image suffix")
    return str(path)
