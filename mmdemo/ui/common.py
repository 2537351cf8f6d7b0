"""Small helpers every tab shares: who is asking, and turning expected failures into a clear message."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from mmdemo.data import ANONYMOUS

F = TypeVar("F", bound=Callable[..., Any])


def current_user(request: gr.Request | None) -> str:
    """The signed-in user's name (local account, or Hugging Face sign-in on a Space), or "anonymous"."""
    username = getattr(request, "username", None) if request is not None else None
    return username or _oauth_username(request) or ANONYMOUS


def visitor(request: gr.Request | None) -> str:
    """Who is asking, as stored with what they make: the signed-in user, or the anonymous visitor told
    apart by their browser session (so they, and only they, may correct what they made)."""
    from mmdemo.accounts import visitor as identity

    return identity(current_user(request), getattr(request, "session_hash", None))


def _oauth_username(request: gr.Request | None) -> str | None:
    """The Hugging Face user signed in through `gr.LoginButton`, read from the session cookie."""
    underlying = getattr(request, "request", None)
    scope = getattr(underlying, "scope", None)
    session = scope.get("session") if isinstance(scope, dict) else None
    info = (session or {}).get("oauth_info") or {}
    return (info.get("userinfo") or {}).get("preferred_username")


def expected_errors() -> tuple[type[BaseException], ...]:
    from mmdemo.accounts import AccessDenied
    from mmdemo.data import StoreError
    from mmdemo.media.files import MediaError
    from mmdemo.serving.hub import ModelUnavailable

    return (MediaError, ModelUnavailable, StoreError, ValueError, AccessDenied)


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
