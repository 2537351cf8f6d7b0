from __future__ import annotations

import gradio as gr
import pytest

from mmdemo.media import MediaError
from mmdemo.ui.common import current_user, friendly
from mmdemo.zerogpu import on_gpu


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
