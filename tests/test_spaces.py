"""The README is a Space's configuration: check it as the Hub would read it."""

from __future__ import annotations

from importlib.metadata import version

from huggingface_hub import metadata_load

from tests.conftest import ROOT

REQUIRED = ("title", "emoji", "sdk", "sdk_version", "python_version", "app_file", "short_description")


def test_readme_front_matter_is_a_valid_gradio_space_config():
    meta = metadata_load(ROOT / "README.md")
    assert meta is not None, "README.md has no YAML front matter"
    assert all(meta.get(key) for key in REQUIRED), [key for key in REQUIRED if not meta.get(key)]
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == version("gradio")
    assert (ROOT / meta["app_file"]).is_file()
    assert str(meta["python_version"]).startswith("3.")
    assert len(meta["short_description"]) <= 60  # the Hub's limit


def test_requirements_pin_the_tested_versions_and_build_on_spaces():
    lines = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not [line for line in lines if line.startswith("-e")], "a Space build sees only requirements.txt"
    pins = dict(line.split("==") for line in lines)
    for package in ("gradio", "torch", "torchvision", "transformers", "open_clip_torch", "faiss-cpu"):
        assert pins[package] == version(package), package
