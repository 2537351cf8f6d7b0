"""GPU entry points for Hugging Face ZeroGPU: `spaces.GPU` where the `spaces` package exists, else a no-op.

Decorate the functions the UI calls that run a model. The registry still keeps one copy of each model:
ZeroGPU attaches a GPU to the process only while a decorated call runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def on_gpu(duration: int = 60) -> Callable[[F], F]:
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda function: function
    return spaces.GPU(duration=duration)  # type: ignore[no-any-return]
