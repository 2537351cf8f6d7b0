"""The one place that knows devices and loading: task -> loaded adapter, once per process.

`get(task)` returns the active profile's adapter for a task, loading it on first use. Concurrent first
calls load it once. A budget on loaded models (`MMDEMO_MAX_LOADED`, and `MMDEMO_GPU_MEMORY_GB` on a
GPU) unloads the least recently used model before a new one would exceed it.

Fine-tuned versions (rows of the store's `model_versions`) take over a task without a restart: every
`get(task)` asks the store for the newest accepted version of the task's base model; when it changed, the
new one is loaded, swapped in, and the one it replaces is released. `rollback(task)` goes back a version.
"""

from __future__ import annotations

import gc
import importlib
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdemo import config
from mmdemo.serving import hub, zerogpu
from mmdemo.serving.catalog import PROFILE_TABLES
from mmdemo.serving.devices import detect_device, keep_freed_memory, pick_dtype
from mmdemo.serving.models.base import PUBLIC_TASKS, LoadContext, ModelInfo, ModelSpec

if TYPE_CHECKING:
    from mmdemo.data import ModelVersion, Store

BASE_VERSION = "base"
TRAINED = "trained"  # the family of a task's model that has no catalog entry (a trained head or adapter)


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


class Registry:
    def __init__(
        self,
        profile: str | None = None,
        *,
        device: str | None = None,
        max_loaded: int | None = None,
        gpu_budget_bytes: int | None = None,
        tables: Mapping[str, Mapping[str, ModelSpec]] = PROFILE_TABLES,
        store: Store | None = None,
        quantize: str | None = None,
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
        self._store = store  # None: the process-wide store, once a database exists
        self._serving: dict[str, str] = {}  # task -> key of the loaded model that serves it
        self._swap_locks: dict[str, threading.Lock] = {}
        self.quantize = quantize if quantize is not None else config.quantize()

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

    # -- fine-tuned versions --------------------------------------------------------------------
    def version_store(self) -> Store | None:
        if self._store is not None:
            return self._store
        from mmdemo.data import store

        # No database yet means no versions; do not create one just to look.
        return store.default_store() if store.default_path().exists() else None

    def _base_spec(self, task: str) -> ModelSpec | None:
        try:
            return self.choose(task).spec
        except UnknownTask:
            return None

    def active_version(self, task: str) -> ModelVersion | None:
        """The newest accepted version that serves `task` in this profile, if any.

        A version belongs to the base model it was trained from; a task with no base model in the catalog
        (a trained head) takes the newest version trained under this profile."""
        versions = self.version_store()
        if versions is None:
            return None
        base = self._base_spec(task)
        if base is not None:
            return versions.newest_accepted_version(task, base_model=base.name)
        return versions.newest_accepted_version(
            task, profile=None if self.profile == "auto" else self.profile
        )

    def serving_spec(self, task: str) -> ModelSpec:
        """The spec `get(task)` loads: the base model's, or that of its newest accepted version."""
        base = self._base_spec(task)
        version = self.active_version(task)
        if version is None:
            if base is None:
                raise UnknownTask(f"no model serves the task {task!r}")
            return base
        if base is None:
            base = ModelSpec(
                name=version.base_model,
                task=task,
                family=TRAINED,
                profile=version.profile,
                source=version.artifact,
                source_kind="local",
                builder=version.builder or "",
            )
        return replace(
            base,
            version=version.version,
            source=version.artifact,
            source_kind="local",
            builder=version.builder or base.builder,
            allow_patterns=None,
        )

    def rollback(self, task: str, to_version: str | None = None, *, user: str | None = None) -> str:
        """Stop serving the newest accepted version (or every one newer than `to_version`; "base" for
        all). Returns the version now served. A loaded model is swapped at once."""
        versions = self.version_store()
        current = self.active_version(task)
        if versions is None or (current is None and to_version in (None, BASE_VERSION)):
            raise ValueError(f"no fine-tuned {task} version is served; nothing to roll back")
        base = self._base_spec(task)
        line = current or versions.model_version(task, to_version or "")
        if base is None and line is None:
            raise UnknownTask(f"no {task} version {to_version!r}")
        base_model = base.name if base is not None else line.base_model  # type: ignore[union-attr]
        now_serving = versions.rollback_model_version(
            task, base_model=base_model, to_version=to_version, user=user
        )
        with self._lock:
            was_loaded = task in self._serving and self._serving[task] in self._loaded
        if was_loaded and (now_serving is not None or base is not None):
            self.get(task)
        elif was_loaded:
            self.unload(task)  # a trained head with no version left: nothing serves the task now
        return now_serving.version if now_serving is not None else BASE_VERSION

    def versions(self, task: str | None = None) -> list[ModelVersion]:
        """Every fine-tuned version in the store (newest first per task), served or not."""
        versions = self.version_store()
        return versions.model_versions(task) if versions is not None else []

    def build_copy(self, task: str, dtype: Any = None) -> Any:
        """A private, uncached copy of the model serving `task` (float32 by default), for training."""
        import torch

        spec = self.serving_spec(task)
        return self._build(spec, dtype=dtype or torch.float32).adapter

    # -- loading -------------------------------------------------------------------------------
    def get(self, task: str) -> Any:
        """The loaded adapter for `task`; loads it on first use, and swaps in a newer accepted version."""
        spec = self.serving_spec(task)
        with self._lock:
            unchanged = self._serving.get(task) == spec_key(spec)
        if unchanged:
            return zerogpu.bind(self.load_spec(spec))
        # A swap: one at a time per task, re-reading the newest version under the lock, so a caller that
        # looked before a newer version arrived cannot swap the older one back in.
        with self._lock:
            swap_lock = self._swap_locks.setdefault(task, threading.Lock())
        with swap_lock:
            spec = self.serving_spec(task)
            adapter = self.load_spec(spec)
            with self._lock:
                previous, self._serving[task] = self._serving.get(task), spec_key(spec)
                if previous is not None and previous not in self._serving.values():
                    self._unload_key(previous)
        return zerogpu.bind(adapter)

    def _unload_key(self, key: str) -> None:
        if (entry := self._loaded.pop(key, None)) is not None:
            self._release(entry)

    def info(self, task: str) -> ModelInfo:
        return self.get(task).info

    def load_spec(self, spec: ModelSpec) -> Any:
        key = spec_key(spec)
        with self._lock:
            if (entry := self._loaded.get(key)) is not None:
                self._loaded.move_to_end(key)
                return entry.adapter
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                if (entry := self._loaded.get(key)) is not None:
                    self._loaded.move_to_end(key)
                    return entry.adapter
                self._make_room(spec)
            entry = self._build(spec)
            with self._lock:
                self._make_room(spec)
                self._loaded[key] = entry
            return entry.adapter

    def _build(self, spec: ModelSpec, dtype: Any = None) -> LoadedModel:
        started = time.perf_counter()
        if spec.source_kind == "hub":
            path = hub.resolve(spec.source, list(spec.allow_patterns or ()))
        elif spec.source_kind == "local":
            path = Path(spec.source)
            if not path.exists():
                raise hub.ModelUnavailable(f"{spec.name} {spec.version}: the model folder {path} is missing")
        else:
            path = None
        dtype = dtype if dtype is not None else pick_dtype(self.device, spec, self.quantize)
        if self.device == "cpu":
            keep_freed_memory()
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
        dtype_name = str(dtype).replace("torch.", "")
        if self.quantize == "int8" and self.device == "cpu":
            from mmdemo.serving.quantize import quantize_int8  # imports torch: only once a model loads

            if quantize_int8(adapter):
                dtype_name = "int8"
        return LoadedModel(
            adapter=adapter,
            spec=spec,
            device=self.device,
            dtype=dtype_name,
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
        zerogpu.forget(entry.adapter)
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
            if task is None:
                names = list(self._loaded)
                self._serving.clear()
            else:
                names = [self._serving.pop(task, None) or spec_key(self.choose(task).spec)]
            for name in names:
                self._unload_key(name)

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    # -- reporting -----------------------------------------------------------------------------
    def status(self) -> list[ModelStatus]:
        """Every model this registry serves (and those they are built on), loaded or not."""
        rows: list[tuple[ModelSpec, str]] = []
        for task in self.tasks():
            choice = self.choose(task)
            spec = self.serving_spec(task)
            why = choice.why if spec is choice.spec else f"{choice.why}; fine-tuned version {spec.version}"
            rows.append((spec, why))
            for dependency in choice.spec.options.get("needs", ()):
                spec = self.spec_in_profile(choice.spec.profile, dependency)
                rows.append((spec, f"used by the {task} model"))
        seen: set[str] = set()
        result = []
        with self._lock:
            for spec, why in rows:
                if spec_key(spec) in seen:
                    continue
                seen.add(spec_key(spec))
                entry = self._loaded.get(spec_key(spec))
                parameters = entry.num_parameters if entry else None
                needs = spec.options.get("needs", ())
                if needs and not parameters:  # a composite: its weights are its parts' (their own rows)
                    parameters, why = None, f"{why}; its weights are those of {' + '.join(needs)}"
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
                        else str(pick_dtype(self.device, spec, self.quantize)).replace("torch.", ""),
                        loaded=entry is not None,
                        load_seconds=round(entry.load_seconds, 2) if entry else None,
                        parameters=parameters,
                        why=why,
                    )
                )
        return result


def spec_key(spec: ModelSpec) -> str:
    """A loaded model's key: its name, plus the version for a fine-tuned one. Trained heads of different
    tasks share their base model's name and count versions per task, so their task is in the key too."""
    if spec.version == BASE_VERSION:
        return spec.name
    return (
        f"{spec.task} on {spec.name}@{spec.version}"
        if spec.family == TRAINED
        else f"{spec.name}@{spec.version}"
    )


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process's registry, for entry points only (`mmdemo.services.default_services`, the CLI): library
    code takes a `Registry` argument."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def configure(profile: str | None = None, **options: Any) -> Registry:
    """Replace the process's registry with a new one (the CLI's `--profile`); the old one unloads."""
    with _default_lock:
        previous = _default
    if previous is not None:
        previous.unload()
    return set_default_registry(Registry(profile, **options))


def set_default_registry(registry: Registry | None) -> Registry:
    """Make `registry` the process's (None: a fresh one on next use); returns it. Tests use this to hand
    the CLI or the app a registry they built."""
    global _default
    with _default_lock:
        _default = registry
    return registry  # type: ignore[return-value]
