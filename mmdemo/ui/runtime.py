"""How the tabs run their models: one queue group per tab, sized for the hardware, and visible progress
while a model loads on its first use (start-up loads nothing)."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from mmdemo import config
from mmdemo.serving.devices import gpu_expected
from mmdemo.serving.registry import Registry, spec_key

if TYPE_CHECKING:
    from mmdemo.services import Services

log = logging.getLogger(__name__)
WARM_TASKS = ("embed", "caption", "audio")  # the models of the first search, caption and video call


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


@dataclass
class Warmup:
    """Background warm-up after the page is served: the models of the first actions are loaded and run once
    (so their kernels and caches are ready) and the default index is built, in a daemon thread."""

    running: bool = False
    done: bool = False
    step: str = ""
    seconds: float | None = None
    errors: list[str] = field(default_factory=list)

    def text(self) -> str:
        return f"⏳ warming up: {self.step}… (the first answers may wait for it)" if self.running else ""


WARMUP = Warmup()


def _warm_task(services: Services, task: str) -> None:
    import numpy as np
    from PIL import Image

    model = services.registry.get(task)
    blank = Image.new("RGB", (256, 256), (127, 127, 127))
    if task == "embed":
        model.encode_images([blank])
        model.encode_texts(["a photo"])
        WARMUP.step = "building the default index"
        services.index.default_index()
    elif task == "caption":
        model.caption([blank])
    elif task == "audio":
        import av  # noqa: F401  (the video tab's decoder: its first import takes seconds)

        model.encode_audio([np.zeros(int(model.sample_rate), dtype=np.float32)])


def warm_up(services: Services, tasks: Sequence[str] = WARM_TASKS) -> None:
    """Load and run once the models of `tasks`; a model that cannot load is noted and skipped."""
    started = time.perf_counter()
    WARMUP.running = True
    try:
        for task in tasks:
            if task not in services.registry.tasks():
                continue
            WARMUP.step = f"loading {services.registry.serving_spec(task).name}"
            try:
                _warm_task(services, task)
            except Exception as error:  # warming is best effort: the first real call reports the error
                WARMUP.errors.append(f"{task}: {error}")
                log.warning("warm-up of %s failed: %s", task, error)
    finally:
        WARMUP.running, WARMUP.done = False, True
        WARMUP.seconds = time.perf_counter() - started


def start_warmup(services: Services) -> threading.Thread | None:
    """Warm up in a daemon thread (`MMDEMO_WARMUP=0` turns it off); call once the app is serving."""
    if not config.warmup():
        return None
    WARMUP.running, WARMUP.step = True, "starting"
    thread = threading.Thread(target=warm_up, args=(services,), name="mmdemo-warmup", daemon=True)
    thread.start()
    return thread


def warmup_status() -> tuple[Any, gr.Timer]:
    """The header line's update ("warming up …" while it runs, hidden once done) and its timer's (stopped
    once nothing is warming)."""
    text = WARMUP.text()
    return gr.update(value=text, visible=bool(text)), gr.Timer(active=bool(text))
