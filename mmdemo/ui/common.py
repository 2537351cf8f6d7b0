"""Small helpers every tab shares: who is asking, and turning expected failures into a clear message."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from mmdemo.store import ANONYMOUS

F = TypeVar("F", bound=Callable[..., Any])


def current_user(request: gr.Request | None) -> str:
    """The signed-in user's name, or "anonymous" for a demo visitor."""
    username = getattr(request, "username", None) if request is not None else None
    return username or ANONYMOUS


def expected_errors() -> tuple[type[BaseException], ...]:
    from mmdemo.hub import ModelUnavailable
    from mmdemo.media import MediaError
    from mmdemo.store import StoreError

    return (MediaError, ModelUnavailable, StoreError, ValueError)


def friendly(function: F) -> F:
    """Show expected failures (bad media, missing model, bad input) as a UI message, not a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except expected_errors() as error:
            raise gr.Error(str(error), print_exception=False) from error

    return wrapper  # type: ignore[return-value]
