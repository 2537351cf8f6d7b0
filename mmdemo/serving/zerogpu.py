"""GPU entry points for Hugging Face ZeroGPU: `spaces.GPU` where the `spaces` package exists, else a no-op.

On ZeroGPU a GPU is attached only while a `spaces.GPU` function runs, in a worker forked from the app's
process. So the boundary is the model call itself: the registry loads each model once in the app's process
(ZeroGPU defers its move to CUDA) and hands out `GpuBound` adapters whose inference methods run through one
decorated function. Everything around the call (input checks, the database) stays in the app's process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from mmdemo import config

F = TypeVar("F", bound=Callable[..., Any])

GPU_SECONDS = 60  # the most one model call may hold the GPU; ZeroGPU queues longer requests behind shorter
INFERENCE_METHODS = frozenset({"encode_images", "encode_texts", "encode_audio", "caption", "answer"})


def on_gpu(duration: int = GPU_SECONDS) -> Callable[[F], F]:
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda function: function
    return spaces.GPU(duration=duration)  # type: ignore[no-any-return]


def active() -> bool:
    """Model calls go through `spaces.GPU`: on a ZeroGPU Space with the `spaces` package installed."""
    if not config.on_zero_gpu():
        return False
    try:
        import spaces  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


# Loaded adapters by id, filled in the app's process; the forked GPU worker finds them here (arguments and
# results cross the process boundary, so only the id, the method name and plain data travel).
_ADAPTERS: dict[int, Any] = {}
_BOUND: dict[int, GpuBound] = {}


def _call(adapter_id: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return getattr(_ADAPTERS[adapter_id], method)(*args, **kwargs)


_call_on_gpu = on_gpu()(_call)


class GpuBound:
    """An adapter whose model calls run under `spaces.GPU`; every other attribute is the adapter's own."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._adapter, name)
        if name in INFERENCE_METHODS and callable(value):
            return functools.partial(_run, id(self._adapter), name)
        return value


def _run(adapter_id: int, method: str, *args: Any, **kwargs: Any) -> Any:
    return _call_on_gpu(adapter_id, method, args, kwargs)


def forget(adapter: Any) -> None:
    """An unloaded adapter is no longer reachable from GPU calls (and can be freed)."""
    _ADAPTERS.pop(id(adapter), None)
    _BOUND.pop(id(adapter), None)


def bind(adapter: Any) -> Any:
    """`adapter` itself, or on ZeroGPU the same adapter with its model calls on the GPU."""
    if not active():
        return adapter
    if id(adapter) not in _BOUND:  # one wrapper per adapter: `get(task) is get(task)` holds here too
        _ADAPTERS[id(adapter)] = adapter
        _BOUND[id(adapter)] = GpuBound(adapter)
    return _BOUND[id(adapter)]
