"""The background warm-up after the app is served: the models of the first search, caption and video call are
loaded and run once (so their kernels and caches are ready) and the default index is built, in a daemon
thread; the page shows `WARMUP.text()` meanwhile. `MMDEMO_WARMUP=0` turns it off."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmdemo import config

if TYPE_CHECKING:
    from mmdemo.services import Services

log = logging.getLogger(__name__)


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


BLANK_SIZE = (256, 256)


def _warm_embedder(services: Services, model: Any) -> None:
    from PIL import Image

    model.encode_images([Image.new("RGB", BLANK_SIZE, (127, 127, 127))])
    model.encode_texts(["a photo"])
    WARMUP.step = "building the default index"
    services.index.default_index()


def _warm_captioner(services: Services, model: Any) -> None:
    from PIL import Image

    model.caption([Image.new("RGB", BLANK_SIZE, (127, 127, 127))])


def _warm_audio(services: Services, model: Any) -> None:
    import av  # noqa: F401  (the video tab's decoder: its first import takes seconds)
    import numpy as np

    model.encode_audio([np.zeros(int(model.sample_rate), dtype=np.float32)])


# registry task -> one call of its model on a blank input
WARMERS: dict[str, Callable[[Services, Any], None]] = {
    "embed": _warm_embedder,
    "caption": _warm_captioner,
    "audio": _warm_audio,
}
WARM_TASKS = tuple(WARMERS)  # the registry tasks of the first search, caption and video call


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
                WARMERS[task](services, services.registry.get(task))
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
