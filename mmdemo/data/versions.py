"""Fine-tuned model versions: what each run trained on, how it scored, and whether it is served."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.data.db import ANONYMOUS, StoreCore, StoreError, now

VERSION_STATUSES = ("training", "accepted", "rejected", "failed", "rolled_back")


@dataclass(frozen=True)
class ModelVersion:
    """One fine-tuning run's result. The registry serves the newest `accepted` one of a task's base model."""

    task: str
    version: str
    number: int
    base_model: str
    profile: str
    parent_version: str
    path: str  # the run's folder: config.json, metrics.json, report.md
    artifact: str  # what the registry loads (a model folder inside `path`)
    builder: str | None  # "module:function" that loads `artifact`; set when the run finishes
    status: str
    config: dict[str, Any]
    data_hash: str
    metrics: dict[str, Any]
    user: str
    created_at: str
    updated_by: str | None
    updated_at: str | None


class VersionRecords(StoreCore):
    def start_model_version(
        self,
        task: str,
        *,
        base_model: str,
        profile: str,
        parent_version: str,
        models_dir: Path,
        config: dict[str, Any],
        data_hash: str,
        user: str | None = None,
    ) -> ModelVersion:
        """Reserve the next version id of a task (v1, v2, ...) for a run that is starting."""
        with self._write() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM model_versions WHERE task = ?", [task]
            ).fetchone()
            number = int(row[0])
            version = f"v{number}"
            folder = Path(models_dir) / task / version
            db.table("model_versions").insert(
                {
                    "task": task,
                    "version": version,
                    "number": number,
                    "base_model": base_model,
                    "profile": profile,
                    "parent_version": parent_version,
                    "path": str(folder),
                    "artifact": str(folder / "model"),
                    "builder": None,
                    "status": "training",
                    "config": json.dumps(config, sort_keys=True),
                    "data_hash": data_hash,
                    "metrics": "{}",
                    "user": user or ANONYMOUS,
                    "created_at": now(),
                    "updated_by": None,
                    "updated_at": None,
                }
            )
        return self.model_version(task, version)  # type: ignore[return-value]

    def finish_model_version(
        self,
        task: str,
        version: str,
        *,
        status: str,
        metrics: dict[str, Any],
        builder: str | None = None,
        user: str | None = None,
    ) -> ModelVersion:
        if status not in VERSION_STATUSES:
            raise StoreError(f"unknown version status {status!r}")
        with self._write() as db:
            db.table("model_versions").update(
                (task, version),
                {
                    "status": status,
                    "metrics": json.dumps(metrics, sort_keys=True),
                    "builder": builder,
                    "updated_by": user or ANONYMOUS,
                    "updated_at": now(),
                },
            )
        return self.model_version(task, version)  # type: ignore[return-value]

    def model_version(self, task: str, version: str) -> ModelVersion | None:
        return self._record(ModelVersion, "model_versions", (task, version))

    def model_versions(self, task: str | None = None) -> list[ModelVersion]:
        """Every version, newest first (per task)."""
        where, args = ("task = ?", [task]) if task else (None, [])
        return self._records(ModelVersion, "model_versions", where, args, order_by="task, number DESC")

    def newest_accepted_version(
        self, task: str, *, base_model: str | None = None, profile: str | None = None
    ) -> ModelVersion | None:
        clauses, args = ["task = ?", "status = 'accepted'"], [task]
        for column, value in (("base_model", base_model), ("profile", profile)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        # The read holds the lock: never halfway through a rollback on this connection.
        newest = self._records(
            ModelVersion, "model_versions", " AND ".join(clauses), args, order_by="number DESC", limit=1
        )
        return newest[0] if newest else None

    def rollback_model_version(
        self, task: str, *, base_model: str, to_version: str | None = None, user: str | None = None
    ) -> ModelVersion | None:
        """Stop serving the newest accepted version of a task's base model, or every one newer than
        `to_version` (which is served again, even if it had been rolled back; "base" means none).
        Returns the version now served, None for the base model."""
        change = {"updated_by": user or ANONYMOUS, "updated_at": now()}
        with self._write() as db:
            accepted = self._records(
                ModelVersion,
                "model_versions",
                "task = ? AND base_model = ? AND status = 'accepted'",
                [task, base_model],
                order_by="number DESC",
            )
            if to_version is None:
                if not accepted:
                    raise StoreError(f"no accepted {task} version to roll back; the base model is served")
                newer_than, target = accepted[0].number - 1, None
            elif to_version == "base":
                newer_than, target = 0, None
            else:
                target = self.model_version(task, to_version)
                if target is None or target.base_model != base_model:
                    raise StoreError(f"no {task} version {to_version!r} of {base_model!r}")
                if target.status not in ("accepted", "rolled_back", "rejected"):
                    raise StoreError(f"{task} {to_version} is {target.status}; it cannot be served")
                newer_than = target.number
            versions = db.table("model_versions")
            for version in accepted:
                if version.number > newer_than:
                    versions.update((task, version.version), {"status": "rolled_back", **change})
            if target is not None and target.status != "accepted":
                versions.update((task, target.version), {"status": "accepted", **change})
        return self.newest_accepted_version(task, base_model=base_model)
