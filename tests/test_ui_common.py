from __future__ import annotations

import importlib
import sys
import types

import gradio as gr
import pytest

from mmdemo.media.files import MediaError
from mmdemo.serving import zerogpu
from mmdemo.serving.models.base import CaptionOptions
from mmdemo.serving.registry import Registry
from mmdemo.serving.zerogpu import on_gpu
from mmdemo.ui.common import current_user, friendly


def test_friendly_turns_expected_failures_into_a_message_and_keeps_others():
    @friendly
    def bad_media(path: str) -> str:
        raise MediaError(f"{path} is not an image")

    @friendly
    def bug() -> None:
        raise KeyError("a bug stays a bug")

    with pytest.raises(gr.Error, match=r"x\.txt is not an image"):
        bad_media("x.txt")
    with pytest.raises(KeyError):
        bug()


def test_current_user_is_anonymous_without_a_signed_in_user():
    assert current_user(None) == "anonymous"

    class Signed:
        username = "ana"

    assert current_user(Signed()) == "ana"  # type: ignore[arg-type]


def test_on_gpu_is_a_no_op_without_the_spaces_package():
    def infer(x: int) -> int:
        return x + 1

    assert on_gpu()(infer) is infer


@pytest.fixture
def zero_gpu_space(monkeypatch):
    """A ZeroGPU Space: `SPACES_ZERO_GPU` set and a `spaces` package whose GPU decorator logs each call."""
    calls: list[str] = []

    def gpu(duration: int = 60):
        def decorate(function):
            def on_the_gpu(adapter_id, method, *rest):
                calls.append(method)
                return function(adapter_id, method, *rest)

            return on_the_gpu

        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    importlib.reload(zerogpu)
    yield calls
    monkeypatch.undo()
    importlib.reload(zerogpu)


def test_on_zero_gpu_model_calls_go_through_spaces_gpu_and_the_rest_stays(zero_gpu_space, sample_images):
    registry = Registry("tiny", device="cpu")
    captioner = registry.get("caption")
    assert isinstance(captioner, zerogpu.GpuBound) and registry.get("caption") is captioner
    captions = captioner.caption([sample_images["coffee"]], CaptionOptions(max_length=5))
    assert zero_gpu_space == ["caption"] and isinstance(captions[0], str) and captions[0]
    assert captioner.info.profile == "tiny"  # not a model call: read in the app's process
    registry.unload("caption")
    assert zerogpu._ADAPTERS == {}  # an unloaded model is not kept alive for the GPU worker


def test_off_zero_gpu_the_registry_hands_out_the_adapter_itself(sample_images):
    registry = Registry("tiny", device="cpu")
    assert not isinstance(registry.get("caption"), zerogpu.GpuBound)
