"""How the tabs run their models: one queue group per tab, sized for the hardware, and visible progress
while a model loads on its first use (start-up loads nothing)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from mmdemo import config
from mmdemo.serving.devices import gpu_expected
from mmdemo.serving.registry import Registry, spec_key
from mmdemo.warmup import WARMUP

log = logging.getLogger(__name__)


def model_queue(tab: str) -> dict[str, Any]:
    """Options for the events of `tab` that run a model: they share one concurrency group with the limit for
    this hardware. Other events (database reads, corrections) keep their own groups, so they never wait
    behind a model call."""
    return {
        "concurrency_id": f"{tab}-model",
        "concurrency_limit": config.model_concurrency(gpu_expected()),
    }


def prepare_models(progress: gr.Progress, tasks: Sequence[str], active: Registry) -> None:
    """Load the models for `tasks` that are not loaded yet, saying so ("loading <model> (first use)…"), then
    announce the run itself."""
    for step, task in enumerate(tasks):
        spec = active.serving_spec(task)
        if spec_key(spec) not in active.loaded_names():
            verb = "warming up" if WARMUP.running else "loading"
            progress(step / (2 * len(tasks)), desc=f"{verb} {spec.name} (first use)…")
            active.get(task)
    progress(0.5, desc="running…")


def bind(function: Callable[..., Any], service: object) -> Callable[..., Any]:
    """`function` with its first argument (the tab's registry or index service) given, as a Gradio event
    handler. Not `functools.partial`: Gradio reads the handler's signature and type hints to inject
    `gr.Request` and `gr.Progress`, and finds no type hints on a partial."""

    @functools.wraps(function)
    def handler(*args: Any, **kwargs: Any) -> Any:
        return function(service, *args, **kwargs)

    parameters = list(inspect.signature(function).parameters.values())[1:]
    handler.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return handler


def warmup_status() -> tuple[Any, gr.Timer]:
    """The header line's update ("warming up …" while it runs, hidden once done) and its timer's (stopped
    once nothing is warming)."""
    text = WARMUP.text()
    return gr.update(value=text, visible=bool(text)), gr.Timer(active=bool(text))
