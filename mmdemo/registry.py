"""The one place that knows devices and loading: task -> loaded adapter, once per process.

`get(task)` returns the active profile's adapter for a task, loading it on first use. Concurrent first
calls load it once. A budget on loaded models (`MMDEMO_MAX_LOADED`, and `MMDEMO_GPU_MEMORY_GB` on a
GPU) unloads the least recently used model before a new one would exceed it.
"""

from __future__ import annotations

import gc
import importlib
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmdemo import config, hub
from mmdemo.catalog import PROFILE_TABLES
from mmdemo.models.base import PUBLIC_TASKS, LoadContext, ModelInfo, ModelSpec


class UnknownTask(KeyError):
    pass


@dataclass(frozen=True)
class Choice:
    """The spec that serves a task, and why it was chosen (shown by `mmdemo models` and the Status tab)."""

    spec: ModelSpec
    why: str


@dataclass
class LoadedModel:
    adapter: Any
    spec: ModelSpec
    device: str
    dtype: str
    load_seconds: float
    num_parameters: int


@dataclass(frozen=True)
class ModelStatus:
    task: str
    name: str
    source: str
    source_kind: str
    profile: str
    version: str
    device: str
    dtype: str
    loaded: bool
    load_seconds: float | None
    parameters: int | None
    why: str


def pick_device(override: str | None, cuda_available: bool, mps_available: bool) -> str:
    """CUDA, else Apple MPS, else CPU; an explicit override (`MMDEMO_DEVICE`) wins."""
    if override:
        return override
    if cuda_available:
        return "cuda"
    if mps_available:
        return "mps"
    return "cpu"


def detect_device() -> str:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return pick_device(config.device_override(), torch.cuda.is_available(), bool(mps and mps.is_available()))


def pick_dtype(device: str, spec: ModelSpec) -> Any:
    import torch

    return torch.float16 if device.startswith("cuda") and spec.half else torch.float32


class Registry:
    def __init__(
        self,
        profile: str | None = None,
        *,
        device: str | None = None,
        max_loaded: int | None = None,
        gpu_budget_bytes: int | None = None,
        tables: Mapping[str, Mapping[str, ModelSpec]] = PROFILE_TABLES,
    ) -> None:
        self.profile = profile or config.profile()
        if self.profile not in ("auto", *tables):
            raise ValueError(f"unknown profile {self.profile!r}; choose from auto, {', '.join(tables)}")
        self.tables = tables
        self._device = device
        self.max_loaded = max(1, max_loaded if max_loaded is not None else config.max_loaded())
        self.gpu_budget_bytes = (
            gpu_budget_bytes if gpu_budget_bytes is not None else config.gpu_budget_bytes()
        )
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._choices: dict[str, Choice] = {}

    # -- which model serves a task -------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            self._device = detect_device()
        return self._device

    def tasks(self) -> list[str]:
        fixed = self.tables.get(self.profile, {})
        return [t for t in PUBLIC_TASKS if t in fixed or self.profile == "auto"]

    def choose(self, task: str) -> Choice:
        with self._lock:
            if task not in self._choices:
                self._choices[task] = self._choose(task)
            return self._choices[task]

    def _choose(self, task: str) -> Choice:
        if self.profile != "auto":
            table = self.tables[self.profile]
            if task not in table:
                raise UnknownTask(f"no {task!r} model in the {self.profile} profile")
            return Choice(table[task], f"profile {self.profile} chosen")
        full, lite = self.tables.get("full", {}).get(task), self.tables.get("lite", {}).get(task)
        if full is None and lite is None:
            raise UnknownTask(f"no model serves the task {task!r}")
        if full is not None:
            ok, why = self._available(full)
            if ok or lite is None:
                return Choice(full, f"auto: full ({why})")
            return Choice(lite, f"auto: lite, since {why}")
        return Choice(lite, "auto: lite (no full model for this task)")

    @staticmethod
    def _available(spec: ModelSpec) -> tuple[bool, str]:
        if spec.source_kind == "hub":
            return hub.availability(spec.source)
        return True, "ships with the installed packages"

    def spec_in_profile(self, profile: str, task: str) -> ModelSpec:
        try:
            return self.tables[profile][task]
        except KeyError:
            raise UnknownTask(f"no {task!r} model in the {profile} profile") from None

    # -- loading -------------------------------------------------------------------------------
    def get(self, task: str) -> Any:
        """The loaded adapter for `task`; loads it on first use."""
        return self.load_spec(self.choose(task).spec)

    def info(self, task: str) -> ModelInfo:
        return self.get(task).info

    def load_spec(self, spec: ModelSpec) -> Any:
        with self._lock:
            if (entry := self._loaded.get(spec.name)) is not None:
                self._loaded.move_to_end(spec.name)
                return entry.adapter
            load_lock = self._load_locks.setdefault(spec.name, threading.Lock())
        with load_lock:
            with self._lock:
                if (entry := self._loaded.get(spec.name)) is not None:
                    self._loaded.move_to_end(spec.name)
                    return entry.adapter
                self._make_room(spec)
            entry = self._build(spec)
            with self._lock:
                self._make_room(spec)
                self._loaded[spec.name] = entry
            return entry.adapter

    def _build(self, spec: ModelSpec) -> LoadedModel:
        started = time.perf_counter()
        path = (
            hub.resolve(spec.source, list(spec.allow_patterns or ())) if spec.source_kind == "hub" else None
        )
        dtype = pick_dtype(self.device, spec)
        module_name, function_name = spec.builder.split(":")
        builder = getattr(importlib.import_module(module_name), function_name)
        context = LoadContext(
            spec=spec,
            device=self.device,
            dtype=dtype,
            path=path,
            get=lambda task: self.load_spec(self.spec_in_profile(spec.profile, task)),
        )
        adapter = builder(context)
        return LoadedModel(
            adapter=adapter,
            spec=spec,
            device=self.device,
            dtype=str(dtype).replace("torch.", ""),
            load_seconds=time.perf_counter() - started,
            num_parameters=int(getattr(adapter, "num_parameters", 0)),
        )

    def _make_room(self, incoming: ModelSpec) -> None:
        """Unload least recently used models until `incoming` fits the count and GPU budgets."""
        while self._loaded and len(self._loaded) >= self.max_loaded:
            self._evict_oldest()
        if self.gpu_budget_bytes and self.device.startswith("cuda"):
            import torch

            needed = incoming.approx_parameters * (2 if incoming.half else 4)
            while self._loaded and torch.cuda.memory_allocated() + needed > self.gpu_budget_bytes:
                self._evict_oldest()

    def _evict_oldest(self) -> None:
        _, entry = self._loaded.popitem(last=False)
        self._release(entry)

    def _release(self, entry: LoadedModel) -> None:
        if close := getattr(entry.adapter, "close", None):
            close()
        del entry
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def unload(self, task: str | None = None) -> None:
        """Unload one task's model, or every model."""
        with self._lock:
            names = list(self._loaded) if task is None else [self.choose(task).spec.name]
            for name in names:
                if (entry := self._loaded.pop(name, None)) is not None:
                    self._release(entry)

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    # -- reporting -----------------------------------------------------------------------------
    def status(self) -> list[ModelStatus]:
        """Every model this registry serves (and those they are built on), loaded or not."""
        rows: list[tuple[ModelSpec, str]] = []
        for task in self.tasks():
            choice = self.choose(task)
            rows.append((choice.spec, choice.why))
            for dependency in choice.spec.options.get("needs", ()):
                spec = self.spec_in_profile(choice.spec.profile, dependency)
                rows.append((spec, f"used by the {task} model"))
        seen: set[str] = set()
        result = []
        with self._lock:
            for spec, why in rows:
                if spec.name in seen:
                    continue
                seen.add(spec.name)
                entry = self._loaded.get(spec.name)
                result.append(
                    ModelStatus(
                        task=spec.task,
                        name=spec.name,
                        source=spec.source,
                        source_kind=spec.source_kind,
                        profile=spec.profile,
                        version=spec.version,
                        device=entry.device if entry else self.device,
                        dtype=entry.dtype
                        if entry
                        else str(pick_dtype(self.device, spec)).replace("torch.", ""),
                        loaded=entry is not None,
                        load_seconds=round(entry.load_seconds, 2) if entry else None,
                        parameters=entry.num_parameters if entry else None,
                        why=why,
                    )
                )
        return result


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry shared by the UI, the CLI and training."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def configure(profile: str | None = None, **options: Any) -> Registry:
    """Replace the process-wide registry (the CLI's `--profile`, tests)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.unload()
        _default = Registry(profile, **options)
        return _default


def get(task: str) -> Any:
    return default_registry().get(task)


def status() -> list[ModelStatus]:
    return default_registry().status()


STATUS_COLUMNS = (
    "task",
    "model",
    "profile",
    "source",
    "device",
    "dtype",
    "loaded",
    "load s",
    "parameters",
    "why",
)


def status_rows(statuses: list[ModelStatus]) -> list[list[Any]]:
    """Status as table rows (the CLI and the Status tab show the same columns)."""
    return [
        [
            s.task,
            s.name,
            s.profile,
            s.source,
            s.device,
            s.dtype,
            "yes" if s.loaded else "no",
            "" if s.load_seconds is None else f"{s.load_seconds:.2f}",
            "" if s.parameters is None else f"{s.parameters:,}",
            s.why,
        ]
        for s in statuses
    ]
