"""The registry's state as table rows: the CLI (`mmdemo models`, `mmdemo versions`) and the Status tab show
the same columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmdemo.serving.registry import ModelStatus, Registry

if TYPE_CHECKING:
    from mmdemo.data import ModelVersion

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
    """Status as table rows."""
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


VERSION_COLUMNS = (
    "task",
    "version",
    "status",
    "serving",
    "base model",
    "profile",
    "from",
    "metrics",
    "by",
    "created",
)


def _metric_summary(metrics: dict[str, Any]) -> str:
    before, after = metrics.get("before", {}), metrics.get("after", {})
    return ", ".join(f"{name} {before[name]:.4g}→{after[name]:.4g}" for name in before if name in after)


def version_rows(registry: Registry, versions: list[ModelVersion]) -> list[list[Any]]:
    """Versions as table rows, marking the ones this registry serves (the CLI and the Status tab)."""
    served: dict[str, str | None] = {}
    for version in versions:
        if version.task not in served:
            active = registry.active_version(version.task)
            served[version.task] = active.version if active is not None else None
    return [
        [
            v.task,
            v.version,
            v.status,
            "yes" if served[v.task] == v.version else "",
            v.base_model,
            v.profile,
            v.parent_version,
            _metric_summary(v.metrics) or v.metrics.get("error", ""),
            v.user,
            v.created_at[:19].replace("T", " "),
        ]
        for v in versions
    ]
