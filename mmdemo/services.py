"""The stateful services of one process, created once and passed in: the model registry and the index service.

Entry points (`app.py`, the CLI) get them from `default_services()`; everything below takes them as
arguments. Tests build their own `Services`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from mmdemo.data import Store
from mmdemo.search.service import IndexService
from mmdemo.serving.registry import Registry, default_registry, set_default_registry


@dataclass(frozen=True)
class Services:
    registry: Registry
    index: IndexService

    @classmethod
    def create(
        cls, registry: Registry | None = None, *, index_root: Path | None = None, store: Store | None = None
    ) -> Services:
        """Services over `registry` (a new one of the configured profile if None)."""
        registry = registry if registry is not None else Registry()
        return cls(registry, IndexService(registry, root=index_root, store=store))


_process: Services | None = None
_lock = threading.Lock()


def default_services() -> Services:
    """The process's services, built on first use over the process registry (rebuilt if `--profile`
    replaced it)."""
    global _process
    registry = default_registry()
    with _lock:
        if _process is None or _process.registry is not registry:
            _process = Services.create(registry)
        return _process


def use_services(services: Services | None) -> Services | None:
    """Make `services` the process's (None: built afresh on next use), so entry points that look them up
    (the CLI) use them too; returns the ones they replace."""
    global _process
    with _lock:
        previous, _process = _process, services
    set_default_registry(services.registry if services is not None else None)
    return previous
