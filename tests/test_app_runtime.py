"""How the assembled app runs: nothing loads at start-up, model calls queue per tab, examples on every tab."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from mmdemo import config
from mmdemo.serving.devices import gpu_expected
from mmdemo.serving.registry import Registry
from mmdemo.ui import runtime
from tests.conftest import ROOT

MODEL_EVENTS = {  # the public API's endpoints, and the UI's own (private) events, `ui_` + what they do
    "retrieval-model": {
        "search_text",
        "search_image",
        "add_images",
        "ui_search_text",
        "ui_search_text_submit",
        "ui_search_image",
        "ui_search_by_result",
        "ui_add_images",
    },
    "captioning-model": {"caption", "caption_batch", "ui_caption", "ui_caption_batch"},
    "vqa-model": {"ask", "ui_ask"},
    "video-model": {"classify_video", "ui_classify_video"},
    "labeling-model": {
        "labeling_next",
        "labeling_submit",
        "labeling_skip",
        "ui_labeling_next",
        "ui_labeling_submit",
        "ui_labeling_submit_enter",
        "ui_labeling_skip",
        "labeling_create_job",
    },
}
CHEAP_EVENTS = {
    "judge",
    "correct_caption",
    "correct_answer",
    "correct_video",
    "status",
    "ui_judge_relevant",
    "ui_correct_caption",
    "ui_correct_answer",
    "ui_correct_video",
    "ui_vqa_history",
    "ui_status",
}


@pytest.fixture(scope="module")
def demo() -> gr.Blocks:
    from mmdemo.ui.app import build_app

    return build_app()


def tab_of(block: gr.blocks.Block) -> str | None:
    while block is not None and not isinstance(block, gr.Tab):
        block = block.parent
    return block.id if block is not None else None


def test_building_the_app_and_its_page_load_reads_load_no_model(monkeypatch):
    built: list[str] = []
    monkeypatch.setattr(Registry, "_build", lambda self, spec, dtype=None: built.append(spec.name))
    from mmdemo.services import Services
    from mmdemo.ui import status
    from mmdemo.ui.app import build_app

    services = Services.create()  # the default (auto) profile, as `python app.py` starts
    build_app(services)
    status.status_view(services.registry)  # what the page asks for when it loads
    assert services.registry.loaded_names() == [] and built == []


def test_model_calls_share_one_group_per_tab_and_cheap_events_have_their_own(demo, monkeypatch):
    by_api = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    for group, names in MODEL_EVENTS.items():
        for name in names:
            assert by_api[name].concurrency_id == group, name
            assert by_api[name].concurrency_limit == config.model_concurrency(gpu_expected())
    model_groups = set(MODEL_EVENTS)
    assert not {by_api[name].concurrency_id for name in CHEAP_EVENTS} & model_groups


def test_model_concurrency_suits_the_hardware_and_the_env_overrides_it(monkeypatch, tmp_path: Path):
    for name in ("MMDEMO_CONCURRENCY", "SPACES_ZERO_GPU", "MMDEMO_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    assert config.model_concurrency(gpu=False) == 2
    assert config.model_concurrency(gpu=True) == 1
    assert gpu_expected(tmp_path) is False
    (tmp_path / "nvidia0").touch()
    assert gpu_expected(tmp_path) is True
    monkeypatch.setenv("MMDEMO_DEVICE", "cpu")
    assert gpu_expected(tmp_path) is False
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert config.model_concurrency(gpu=False) == 1
    monkeypatch.setenv("MMDEMO_CONCURRENCY", "3")
    assert config.model_concurrency(gpu=True) == 3
    monkeypatch.setenv("MMDEMO_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="MMDEMO_CONCURRENCY"):
        config.model_concurrency(gpu=False)


def test_every_task_tab_has_examples_from_assets(demo):
    examples: dict[str, list[gr.Dataset]] = {}
    for block in demo.blocks.values():
        if isinstance(block, gr.Dataset):
            examples.setdefault(tab_of(block), []).append(block)
    assert {"retrieval", "captioning", "vqa", "video"} <= set(examples)
    for tab in ("retrieval", "captioning", "vqa", "video"):
        assert all(dataset.samples for dataset in examples[tab]), tab
    assert len(examples["retrieval"]) == 2  # text queries and images
    files = [Path(value["path"]) for value in _file_values(examples)]
    asset_names = {path.name for path in (ROOT / "assets").rglob("*") if path.is_file()}
    assert {path.suffix for path in files} == {".jpg", ".mp4"}
    assert all(path.is_file() and path.name in asset_names for path in files)


def _file_values(examples: dict[str, list[gr.Dataset]]) -> list[dict]:
    values = []
    for datasets in examples.values():
        for dataset in datasets:
            for sample in dataset.samples:
                values += [v for v in sample if isinstance(v, dict) and "path" in v]
    return values


class RecordedProgress:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, progress: float | None, desc: str | None = None, **_: object) -> None:
        self.messages.append(desc or "")


def test_first_use_says_which_model_loads_and_later_uses_only_that_it_runs(tiny):
    tiny.unload()
    first, second = RecordedProgress(), RecordedProgress()
    runtime.prepare_models(first, ["embed"], tiny)  # type: ignore[arg-type]
    name = tiny.serving_spec("embed").name
    assert first.messages == [f"loading {name} (first use)…", "running…"]
    assert tiny.loaded_names() == [name]
    runtime.prepare_models(second, ["embed"], tiny)  # type: ignore[arg-type]
    assert second.messages == ["running…"]
