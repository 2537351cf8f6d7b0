"""The corrections store: media, predictions and append-only corrections in SQLite (sqlite-utils).

This is the only module that writes SQL. Schema changes are numbered migrations; `PRAGMA user_version`
records how far a database has come, and opening a database runs whatever it has not seen yet.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from mmdemo import config
from mmdemo.media.files import content_hash, file_hash
from mmdemo.serving.models.base import ModelInfo

ANONYMOUS = "anonymous"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# -- migrations -------------------------------------------------------------------------------------
def _append_only(db: sqlite_utils.Database, table: str) -> None:
    """Rows of `table` can be added, never changed or deleted: history stays."""
    for action in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        )


def _v1_initial(db: sqlite_utils.Database) -> None:
    db["media"].create(
        {"id": str, "path": str, "kind": str, "bytes": int, "created_at": str}, pk="id", if_not_exists=True
    )
    db["predictions"].create(
        {
            "id": int,
            "task": str,
            "media_id": str,
            "input": str,
            "output": str,
            "model_name": str,
            "profile": str,
            "params": str,
            "latency_ms": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("media_id", "media", "id")],
        if_not_exists=True,
    )
    db["corrections"].create(
        {"id": int, "prediction_id": int, "output": str, "user": str, "created_at": str},
        pk="id",
        foreign_keys=[("prediction_id", "predictions", "id")],
        if_not_exists=True,
    )


def _v2_provenance(db: sqlite_utils.Database) -> None:
    """Model version, device and who asked on predictions; media size; a note on corrections; append-only."""
    db["media"].add_column("width", int)
    db["media"].add_column("height", int)
    db["media"].add_column("duration_s", float)
    db["predictions"].add_column("model_version", str)
    db["predictions"].add_column("model_source", str)
    db["predictions"].add_column("device", str)
    db["predictions"].add_column("user", str)
    db["corrections"].add_column("note", str)
    db.execute("UPDATE predictions SET model_version = 'base' WHERE model_version IS NULL")
    db.execute(f"UPDATE predictions SET user = '{ANONYMOUS}' WHERE user IS NULL")
    db["predictions"].create_index(["task", "created_at"], if_not_exists=True)
    db["corrections"].create_index(["prediction_id"], if_not_exists=True)
    _append_only(db, "corrections")


def _v3_label_sets(db: sqlite_utils.Database) -> None:
    """Named label sets (video classification, labeling jobs), saved from the UI or the CLI."""
    db["label_sets"].create(
        {"name": str, "labels": str, "user": str, "created_at": str, "updated_at": str},
        pk="name",
        if_not_exists=True,
    )


def _v4_judgements(db: sqlite_utils.Database) -> None:
    """Relevance judgements of search results, append-only, with the query and what produced the ranking."""
    db["judgements"].create(
        {
            "id": int,
            "query_text": str,
            "query_media_id": str,
            "result_media_id": str,
            "rank": int,
            "score": float,
            "relevant": int,
            "embedder_name": str,
            "embedder_version": str,
            "index_name": str,
            "index_version": int,
            "user": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("query_media_id", "media", "id"), ("result_media_id", "media", "id")],
        if_not_exists=True,
    )
    db["judgements"].create_index(["result_media_id"], if_not_exists=True)
    _append_only(db, "judgements")


def _v5_labeling(db: sqlite_utils.Database) -> None:
    """Accounts, labeling jobs, their work queues, append-only label submissions and review decisions."""
    db["users"].create(
        {"name": str, "role": str, "password_hash": str, "source": str, "created_at": str, "updated_at": str},
        pk="name",
        if_not_exists=True,
    )
    db["jobs"].create(
        {
            "id": int,
            "name": str,
            "task": str,
            "labels": str,
            "prompts": str,
            "overlap": int,
            "source": str,
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["jobs"].create_index(["name"], unique=True, if_not_exists=True)
    db["job_items"].create(
        {
            "id": int,
            "job_id": int,
            "media_id": str,
            "prompt": str,
            "position": int,
            "prediction_id": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[
            ("job_id", "jobs", "id"),
            ("media_id", "media", "id"),
            ("prediction_id", "predictions", "id"),
        ],
        if_not_exists=True,
    )
    db["job_items"].create_index(["job_id", "media_id", "prompt"], unique=True, if_not_exists=True)
    db["assignments"].create(
        {
            "id": int,
            "job_id": int,
            "item_id": int,
            "user": str,
            "status": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("job_id", "jobs", "id"), ("item_id", "job_items", "id")],
        if_not_exists=True,
    )
    # The backstop for the atomic assignment: one assignment per item and annotator.
    db["assignments"].create_index(["item_id", "user"], unique=True, if_not_exists=True)
    db["assignments"].create_index(["job_id", "user", "status"], if_not_exists=True)
    for table in ("submissions", "reviews"):
        db[table].create(
            {
                "id": int,
                "job_id": int,
                "item_id": int,
                "user": str,
                "value": str,
                "anonymous": int,
                "submission_id": int,  # reviews: the submission accepted, if one was
                "note": str,
                "created_at": str,
            },
            pk="id",
            foreign_keys=[("job_id", "jobs", "id"), ("item_id", "job_items", "id")],
            if_not_exists=True,
        )
        db[table].create_index(["job_id", "item_id"], if_not_exists=True)
        _append_only(db, table)


def _v6_model_versions(db: sqlite_utils.Database) -> None:
    """Fine-tuned model versions: what each run trained on, how it scored, and whether it is served."""
    db["model_versions"].create(
        {
            "task": str,
            "version": str,
            "number": int,
            "base_model": str,
            "profile": str,
            "parent_version": str,
            "path": str,
            "artifact": str,
            "builder": str,
            "status": str,
            "config": str,
            "data_hash": str,
            "metrics": str,
            "user": str,
            "created_at": str,
            "updated_by": str,
            "updated_at": str,
        },
        pk=("task", "version"),
        if_not_exists=True,
    )
    db["model_versions"].create_index(["task", "base_model", "status", "number"], if_not_exists=True)


def _v7_media_names(db: sqlite_utils.Database) -> None:
    """The file name a person knows a media item by (a kept copy is named by its hash)."""
    if "name" not in db["media"].columns_dict:
        db["media"].add_column("name", str)
    for row in list(db["media"].rows):
        db["media"].update(row["id"], {"name": Path(row["path"]).name})


def _v8_judgement_adapter(db: sqlite_utils.Database) -> None:
    """Which retrieval adapter version ranked a judged result ("base": none). A column with a default,
    so the append-only judgements are never updated."""
    db["judgements"].add_column("adapter_version", str, not_null_default="base")


def _v9_moved_builders(db: sqlite_utils.Database) -> None:
    """Model adapters moved to `mmdemo.serving.models`: versions trained before keep loading."""
    db.execute(
        "UPDATE model_versions SET builder = 'mmdemo.serving.models.' || substr(builder, 15) "
        "WHERE builder LIKE 'mmdemo.models.%'"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_initial,
    _v2_provenance,
    _v3_label_sets,
    _v4_judgements,
    _v5_labeling,
    _v6_model_versions,
    _v7_media_names,
    _v8_judgement_adapter,
    _v9_moved_builders,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    pass


# -- records ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaItem:
    id: str
    path: str
    name: str  # what a person calls it: the file name it came with, not its kept copy's hash name
    kind: str
    bytes: int
    width: int | None
    height: int | None
    duration_s: float | None
    created_at: str


@dataclass(frozen=True)
class Prediction:
    id: int
    task: str
    media_id: str | None
    input: Any
    output: Any
    model_name: str
    model_version: str
    model_source: str | None
    profile: str
    device: str | None
    params: dict[str, Any]
    latency_ms: float
    user: str
    created_at: str


@dataclass(frozen=True)
class Correction:
    id: int
    prediction_id: int
    output: Any
    user: str
    note: str | None
    created_at: str


@dataclass(frozen=True)
class Judgement:
    id: int
    query_text: str | None
    query_media_id: str | None
    result_media_id: str
    rank: int
    score: float
    relevant: bool
    embedder_name: str
    embedder_version: str
    index_name: str
    index_version: int
    user: str
    created_at: str
    adapter_version: str = "base"  # the retrieval adapter that ranked the result


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


def _model_version(row: dict[str, Any]) -> ModelVersion:
    values = {field: row[field] for field in ModelVersion.__dataclass_fields__}
    values["config"] = json.loads(row["config"] or "{}")
    values["metrics"] = json.loads(row["metrics"] or "{}")
    return ModelVersion(**values)


def _prediction(row: dict[str, Any]) -> Prediction:
    return Prediction(
        id=row["id"],
        task=row["task"],
        media_id=row["media_id"],
        input=json.loads(row["input"]),
        output=json.loads(row["output"]),
        model_name=row["model_name"],
        model_version=row["model_version"],
        model_source=row["model_source"],
        profile=row["profile"],
        device=row["device"],
        params=json.loads(row["params"] or "{}"),
        latency_ms=row["latency_ms"],
        user=row["user"],
        created_at=row["created_at"],
    )


def _correction(row: dict[str, Any]) -> Correction:
    return Correction(
        id=row["id"],
        prediction_id=row["prediction_id"],
        output=json.loads(row["output"]),
        user=row["user"],
        note=row["note"],
        created_at=row["created_at"],
    )


def _media(row: dict[str, Any]) -> MediaItem:
    return MediaItem(**{field: row[field] for field in MediaItem.__dataclass_fields__})


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: str
    password_hash: str | None
    source: str  # "local" (password) or "oauth" (Hugging Face sign-in)
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    task: str
    labels: list[str]
    prompts: list[str]  # VQA questions or retrieval queries
    overlap: int
    source: str
    created_by: str
    created_at: str


@dataclass(frozen=True)
class JobItem:
    id: int
    job_id: int
    media_id: str
    prompt: str
    position: int
    prediction_id: int | None


@dataclass(frozen=True)
class LabelRecord:
    """A submission by an annotator, or a reviewer's decision (then `submission_id` may name the one kept)."""

    id: int
    job_id: int
    item_id: int
    user: str
    value: Any
    anonymous: bool
    submission_id: int | None
    note: str | None
    created_at: str


def _job(row: dict[str, Any]) -> Job:
    return Job(
        id=row["id"],
        name=row["name"],
        task=row["task"],
        labels=json.loads(row["labels"] or "[]"),
        prompts=json.loads(row["prompts"] or "[]"),
        overlap=row["overlap"],
        source=row["source"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def _job_item(row: dict[str, Any]) -> JobItem:
    return JobItem(**{field: row[field] for field in JobItem.__dataclass_fields__})


def _label_record(row: dict[str, Any]) -> LabelRecord:
    return LabelRecord(
        id=row["id"],
        job_id=row["job_id"],
        item_id=row["item_id"],
        user=row["user"],
        value=json.loads(row["value"]),
        anonymous=bool(row["anonymous"]),
        submission_id=row["submission_id"],
        note=row["note"],
        created_at=row["created_at"],
    )


# -- the store --------------------------------------------------------------------------------------
def default_path() -> Path:
    return config.data_dir() / "mmdemo.db"


class Store:
    """Typed access to the database. Safe to share between threads; one writer at a time."""

    def __init__(self, path: str | Path | None = None, *, migrate_to: int = SCHEMA_VERSION) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(connection)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        self._lock = threading.RLock()
        self.migrate(migrate_to)

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, target: int = SCHEMA_VERSION) -> None:
        with self._lock:
            current = self.schema_version
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {current}, newer than this mmdemo knows "
                    f"({SCHEMA_VERSION}); upgrade mmdemo"
                )
            for version in range(current + 1, target + 1):
                with self.db.conn:
                    MIGRATIONS[version - 1](self.db)
                    self.db.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        with self._lock, self.db.atomic():  # every statement of one write commits together, or none does
            yield self.db

    def close(self) -> None:
        self.db.close()

    # media
    def add_media(
        self,
        path: str | Path,
        kind: str,
        *,
        data: bytes | None = None,
        width: int | None = None,
        height: int | None = None,
        duration_s: float | None = None,
        name: str | None = None,
    ) -> MediaItem:
        """Record a media file under its content hash; the same content again returns the first record.

        `name` (default: the file's name) is what the UI shows; a record first seen as a hash-named copy
        takes the real name when the same content arrives under one."""
        media_id = content_hash(data) if data is not None else file_hash(path)
        size = len(data) if data is not None else Path(path).stat().st_size
        name = name or Path(path).name
        with self._write() as db:
            if (existing := self.media(media_id)) is not None:
                if existing.name.startswith(media_id) and not name.startswith(media_id):
                    db["media"].update(media_id, {"name": name})
                    return self.media(media_id)  # type: ignore[return-value]
                return existing
            db["media"].insert(
                {
                    "id": media_id,
                    "path": str(path),
                    "name": name,
                    "kind": kind,
                    "bytes": size,
                    "width": width,
                    "height": height,
                    "duration_s": duration_s,
                    "created_at": now(),
                }
            )
        return self.media(media_id)  # type: ignore[return-value]

    def media(self, media_id: str) -> MediaItem | None:
        with self._lock:
            rows = list(self.db["media"].rows_where("id = ?", [media_id]))
        return _media(rows[0]) if rows else None

    # predictions
    def record_prediction(
        self,
        task: str,
        *,
        media_id: str | None,
        input: Any,
        output: Any,
        model: ModelInfo,
        params: dict[str, Any] | None = None,
        latency_ms: float = 0.0,
        user: str | None = None,
    ) -> Prediction:
        with self._write() as db:
            table = db["predictions"]
            table.insert(
                {
                    "task": task,
                    "media_id": media_id,
                    "input": json.dumps(input),
                    "output": json.dumps(output),
                    "model_name": model.name,
                    "model_version": model.version,
                    "model_source": model.source,
                    "profile": model.profile,
                    "device": model.device,
                    "params": json.dumps(params or {}),
                    "latency_ms": float(latency_ms),
                    "user": user or ANONYMOUS,
                    "created_at": now(),
                }
            )
            prediction_id = table.last_pk
        return self.prediction(prediction_id)  # type: ignore[arg-type,return-value]

    def prediction(self, prediction_id: int) -> Prediction | None:
        with self._lock:
            rows = list(self.db["predictions"].rows_where("id = ?", [prediction_id]))
        return _prediction(rows[0]) if rows else None

    def predictions(self, task: str | None = None, limit: int | None = None) -> list[Prediction]:
        where, args = ("task = ?", [task]) if task else (None, [])
        with self._lock:
            rows = list(self.db["predictions"].rows_where(where, args, order_by="id", limit=limit))
        return [_prediction(row) for row in rows]

    # corrections
    def add_correction(
        self, prediction_id: int, output: Any, *, user: str | None = None, note: str | None = None
    ) -> Correction:
        """Append a correction. Earlier corrections of the same prediction stay, as history."""
        if self.prediction(prediction_id) is None:
            raise StoreError(f"no prediction #{prediction_id} to correct")
        with self._write() as db:
            table = db["corrections"]
            table.insert(
                {
                    "prediction_id": prediction_id,
                    "output": json.dumps(output),
                    "user": user or ANONYMOUS,
                    "note": note,
                    "created_at": now(),
                }
            )
            correction_id = table.last_pk
        return _correction(self._select("corrections", "id = ?", [correction_id])[0])

    def corrections(self, prediction_id: int | None = None, task: str | None = None) -> list[Correction]:
        if prediction_id is not None:
            rows = self._select("corrections", "prediction_id = ?", [prediction_id], order_by="id")
        elif task is not None:
            rows = self._query(
                "SELECT c.* FROM corrections c JOIN predictions p ON p.id = c.prediction_id "
                "WHERE p.task = ? ORDER BY c.id",
                [task],
            )
        else:
            rows = self._select("corrections", order_by="id")
        return [_correction(row) for row in rows]

    def latest_correction(self, prediction_id: int) -> Correction | None:
        history = self.corrections(prediction_id)
        return history[-1] if history else None

    # label sets
    def save_label_set(self, name: str, labels: list[str], *, user: str | None = None) -> list[str]:
        """Create or replace a named label set; blank and repeated labels are dropped, order kept."""
        name = name.strip()
        cleaned = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
        if not name:
            raise StoreError("a label set needs a name")
        if not cleaned:
            raise StoreError(f"label set {name!r} has no labels")
        stamp = now()
        with self._write() as db:
            existing = list(db["label_sets"].rows_where("name = ?", [name]))
            created = existing[0]["created_at"] if existing else stamp
            db["label_sets"].upsert(
                {
                    "name": name,
                    "labels": json.dumps(cleaned),
                    "user": user or ANONYMOUS,
                    "created_at": created,
                    "updated_at": stamp,
                },
                pk="name",
            )
        return cleaned

    def label_set(self, name: str) -> list[str] | None:
        rows = self._select("label_sets", "name = ?", [name])
        return json.loads(rows[0]["labels"]) if rows else None

    def label_set_names(self) -> list[str]:
        return [row["name"] for row in self._select("label_sets", order_by="name")]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: self.db[name].count for name in ("media", "predictions", "corrections")}

    # -- retrieval: relevance judgements (append-only; a later judgement of the same pair supersedes) --
    def add_judgement(
        self,
        *,
        result_media_id: str,
        rank: int,
        score: float,
        relevant: bool,
        embedder: ModelInfo,
        index_name: str,
        index_version: int,
        query_text: str | None = None,
        query_media_id: str | None = None,
        user: str | None = None,
        adapter_version: str = "base",
    ) -> Judgement:
        if bool(query_text) == bool(query_media_id):
            raise StoreError("a judgement needs exactly one query: a text or an image")
        if self.media(result_media_id) is None:
            raise StoreError(f"no media item {result_media_id[:12]} to judge")
        with self._write() as db:
            table = db["judgements"]
            table.insert(
                {
                    "query_text": query_text or None,
                    "query_media_id": query_media_id or None,
                    "result_media_id": result_media_id,
                    "rank": int(rank),
                    "score": float(score),
                    "relevant": int(bool(relevant)),
                    "embedder_name": embedder.name,
                    "embedder_version": embedder.version,
                    "index_name": index_name,
                    "index_version": int(index_version),
                    "adapter_version": adapter_version,
                    "user": user or ANONYMOUS,
                    "created_at": now(),
                }
            )
            judgement_id = table.last_pk
        return self.judgements(judgement_id=judgement_id)[0]

    def judgements(
        self, *, judgement_id: int | None = None, result_media_id: str | None = None
    ) -> list[Judgement]:
        if judgement_id is not None:
            where, args = "id = ?", [judgement_id]
        elif result_media_id is not None:
            where, args = "result_media_id = ?", [result_media_id]
        else:
            where, args = None, []
        rows = self._select("judgements", where, args, order_by="id")
        return [Judgement(**{**row, "relevant": bool(row["relevant"])}) for row in rows]

    # -- captioning and VQA: an image's earlier predictions (question history) -------------------
    def predictions_for_media(self, media_id: str, task: str, limit: int = 100) -> list[Prediction]:
        """The newest `limit` predictions of `task` on one media item, oldest first."""
        rows = self._query(
            "SELECT * FROM (SELECT * FROM predictions WHERE media_id = ? AND task = ? "
            "ORDER BY id DESC LIMIT ?) ORDER BY id",
            [media_id, task, limit],
        )
        return [_prediction(row) for row in rows]

    # -- labeling: accounts, jobs, work queues, submissions, reviews ---------------------------
    # Reads here hold the store's lock too: a read on the shared connection while another thread commits
    # breaks sqlite-utils' savepoints ("no such savepoint") under many concurrent annotators.
    def _select(
        self, table: str, where: str | None = None, args: Sequence[Any] = (), order_by: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db[table].rows_where(where, list(args), order_by=order_by))

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, list(args)))

    def save_user(
        self, name: str, role: str, *, password_hash: str | None, source: str = "local"
    ) -> UserRecord:
        stamp = now()
        with self._write() as db:
            existing = self._select("users", "name = ?", [name])
            db["users"].upsert(
                {
                    "name": name,
                    "role": role,
                    "password_hash": password_hash,
                    "source": source,
                    "created_at": existing[0]["created_at"] if existing else stamp,
                    "updated_at": stamp,
                },
                pk="name",
            )
        return self.user(name)  # type: ignore[return-value]

    def user(self, name: str) -> UserRecord | None:
        rows = self._select("users", "name = ?", [name])
        return UserRecord(**rows[0]) if rows else None

    def users(self) -> list[UserRecord]:
        return [UserRecord(**row) for row in self._select("users", order_by="name")]

    def set_user_role(self, name: str, role: str) -> UserRecord:
        with self._write() as db:
            if not self._select("users", "name = ?", [name]):
                raise StoreError(f"no user named {name!r}")
            db["users"].update(name, {"role": role, "updated_at": now()})
        return self.user(name)  # type: ignore[return-value]

    def user_count(self) -> int:
        with self._lock:
            return self.db["users"].count

    def create_job(
        self,
        name: str,
        task: str,
        *,
        items: list[tuple[str, str]],
        labels: list[str],
        prompts: list[str],
        overlap: int,
        source: str,
        created_by: str,
    ) -> Job:
        """A job and its items, `(media_id, prompt)` pairs in order, written in one transaction."""
        stamp = now()
        with self._write() as db:
            if self._select("jobs", "name = ?", [name]):
                raise StoreError(f"a job named {name!r} exists already")
            jobs_table = db["jobs"]
            jobs_table.insert(
                {
                    "name": name,
                    "task": task,
                    "labels": json.dumps(labels),
                    "prompts": json.dumps(prompts),
                    "overlap": overlap,
                    "source": source,
                    "created_by": created_by,
                    "created_at": stamp,
                }
            )
            job_id = jobs_table.last_pk
            db["job_items"].insert_all(
                (
                    {
                        "job_id": job_id,
                        "media_id": media_id,
                        "prompt": prompt,
                        "position": position,
                        "prediction_id": None,
                        "created_at": stamp,
                    }
                    for position, (media_id, prompt) in enumerate(items)
                ),
                ignore=True,
            )
        return self.job(job_id)  # type: ignore[arg-type,return-value]

    def job(self, job_id: int) -> Job | None:
        rows = self._select("jobs", "id = ?", [job_id])
        return _job(rows[0]) if rows else None

    def jobs(self, task: str | None = None) -> list[Job]:
        where, args = ("task = ?", [task]) if task else (None, [])
        return [_job(row) for row in self._select("jobs", where, args, order_by="id")]

    def job_item(self, item_id: int) -> JobItem | None:
        rows = self._select("job_items", "id = ?", [item_id])
        return _job_item(rows[0]) if rows else None

    def job_items(self, job_id: int) -> list[JobItem]:
        return [
            _job_item(row) for row in self._select("job_items", "job_id = ?", [job_id], order_by="position")
        ]

    def set_item_prediction(self, item_id: int, prediction_id: int) -> None:
        with self._write() as db:
            db["job_items"].update(item_id, {"prediction_id": prediction_id})

    def assign_next(
        self, job_id: int, user: str, overlap: int, *, release_prefix: str = "", release_before: str = ""
    ) -> JobItem | None:
        """Hand `user` one more item of the job that fewer than `overlap` annotators hold, or None.

        One INSERT ... SELECT under the store's lock and SQLite's write lock: two annotators (threads or
        processes) asking at once can never push an item past its overlap. Items already started by
        others come first, so that items reach their full overlap (and agreement) early. Open (never
        submitted) assignments of users named `release_prefix`... untouched since `release_before` are
        released first, in the same transaction: a visitor who left does not hold items forever."""
        stamp = now()
        with self._write() as db:
            if release_prefix and release_before:
                db.execute(
                    "DELETE FROM assignments WHERE job_id = ? AND status != 'submitted' "
                    "AND substr(user, 1, ?) = ? AND updated_at < ?",
                    [job_id, len(release_prefix), release_prefix, release_before],
                )
            cursor = db.execute(
                "INSERT INTO assignments (job_id, item_id, user, status, created_at, updated_at) "
                "SELECT ?, ji.id, ?, 'assigned', ?, ? FROM job_items ji "
                "WHERE ji.job_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = ji.id AND a.user = ?) "
                "AND (SELECT COUNT(*) FROM assignments a WHERE a.item_id = ji.id) < ? "
                "ORDER BY (SELECT COUNT(*) FROM assignments a WHERE a.item_id = ji.id) DESC, ji.position "
                "LIMIT 1",
                [job_id, user, stamp, stamp, job_id, user, overlap],
            )
            if cursor.rowcount == 0:
                return None
            row = db.execute("SELECT item_id FROM assignments WHERE id = ?", [cursor.lastrowid]).fetchone()
        return self.job_item(row[0])

    def assigned_items(self, job_id: int, user: str, status: str) -> list[JobItem]:
        """`user`'s items of the job in one status (assigned, skipped, submitted), oldest first."""
        rows = self._query(
            "SELECT ji.* FROM assignments a JOIN job_items ji ON ji.id = a.item_id "
            "WHERE a.job_id = ? AND a.user = ? AND a.status = ? ORDER BY a.updated_at, a.id",
            [job_id, user, status],
        )
        return [_job_item(row) for row in rows]

    def assignment_status(self, item_id: int, user: str) -> str | None:
        rows = self._select("assignments", "item_id = ? AND user = ?", [item_id, user])
        return rows[0]["status"] if rows else None

    def set_assignment_status(self, item_id: int, user: str, status: str) -> None:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE assignments SET status = ?, updated_at = ? WHERE item_id = ? AND user = ?",
                [status, now(), item_id, user],
            )
            if cursor.rowcount == 0:
                raise StoreError(f"item #{item_id} is not assigned to {user}")

    def assignment_counts(self, job_id: int) -> dict[int, int]:
        """How many annotators hold each item of the job (any status)."""
        rows = self._query(
            "SELECT item_id, COUNT(*) AS n FROM assignments WHERE job_id = ? GROUP BY item_id", [job_id]
        )
        return {row["item_id"]: row["n"] for row in rows}

    def add_submission(self, item: JobItem, user: str, value: Any, *, anonymous: bool) -> LabelRecord:
        """Append `user`'s label for an item assigned to them and mark the assignment done, atomically."""
        stamp = now()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE assignments SET status = 'submitted', updated_at = ? WHERE item_id = ? AND user = ?",
                [stamp, item.id, user],
            )
            if cursor.rowcount == 0:
                raise StoreError(f"item #{item.id} is not assigned to {user}")
            return self._append_label(db, "submissions", item, user, value, anonymous, None, None, stamp)

    def add_review(
        self, item: JobItem, reviewer: str, value: Any, *, submission_id: int | None, note: str | None = None
    ) -> LabelRecord:
        with self._write() as db:
            return self._append_label(db, "reviews", item, reviewer, value, False, submission_id, note, now())

    @staticmethod
    def _append_label(
        db: sqlite_utils.Database,
        table: str,
        item: JobItem,
        user: str,
        value: Any,
        anonymous: bool,
        submission_id: int | None,
        note: str | None,
        stamp: str,
    ) -> LabelRecord:
        record = {
            "job_id": item.job_id,
            "item_id": item.id,
            "user": user,
            "value": json.dumps(value),
            "anonymous": int(anonymous),
            "submission_id": submission_id,
            "note": note,
            "created_at": stamp,
        }
        labels = db[table]
        labels.insert(record)
        return _label_record({**record, "id": labels.last_pk})

    def submissions(
        self,
        job_id: int,
        *,
        item_id: int | None = None,
        user: str | None = None,
        include_anonymous: bool = True,
    ) -> list[LabelRecord]:
        """Every submission (history included), oldest first."""
        return self._labels("submissions", job_id, item_id, user, include_anonymous)

    def reviews(self, job_id: int, *, item_id: int | None = None) -> list[LabelRecord]:
        return self._labels("reviews", job_id, item_id, None, True)

    def _labels(
        self, table: str, job_id: int, item_id: int | None, user: str | None, include_anonymous: bool
    ) -> list[LabelRecord]:
        clauses, args = ["job_id = ?"], [job_id]
        if item_id is not None:
            clauses.append("item_id = ?")
            args.append(item_id)
        if user is not None:
            clauses.append("user = ?")
            args.append(user)
        if not include_anonymous:
            clauses.append("anonymous = 0")
        rows = self._select(table, " AND ".join(clauses), args, order_by="id")
        return [_label_record(row) for row in rows]

    # -- model versions (fine-tuning runs) ------------------------------------------------------------
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
            db["model_versions"].insert(
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
            db["model_versions"].update(
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
        rows = self._select("model_versions", "task = ? AND version = ?", [task, version])
        return _model_version(rows[0]) if rows else None

    def model_versions(self, task: str | None = None) -> list[ModelVersion]:
        """Every version, newest first (per task)."""
        where, args = ("task = ?", [task]) if task else (None, [])
        rows = self._select("model_versions", where, args, order_by="task, number DESC")
        return [_model_version(row) for row in rows]

    def newest_accepted_version(
        self, task: str, *, base_model: str | None = None, profile: str | None = None
    ) -> ModelVersion | None:
        clauses, args = ["task = ?", "status = 'accepted'"], [task]
        for column, value in (("base_model", base_model), ("profile", profile)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        with self._lock:  # never read halfway through a rollback on this connection
            rows = list(
                self.db["model_versions"].rows_where(
                    " AND ".join(clauses), args, order_by="number DESC", limit=1
                )
            )
        return _model_version(rows[0]) if rows else None

    def rollback_model_version(
        self, task: str, *, base_model: str, to_version: str | None = None, user: str | None = None
    ) -> ModelVersion | None:
        """Stop serving the newest accepted version of a task's base model, or every one newer than
        `to_version` (which is served again, even if it had been rolled back; "base" means none).
        Returns the version now served, None for the base model."""
        stamp, who = now(), user or ANONYMOUS
        with self._write() as db:
            accepted = [
                _model_version(row)
                for row in db["model_versions"].rows_where(
                    "task = ? AND base_model = ? AND status = 'accepted'",
                    [task, base_model],
                    order_by="number DESC",
                )
            ]
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
            for version in accepted:
                if version.number > newer_than:
                    db["model_versions"].update(
                        (task, version.version),
                        {"status": "rolled_back", "updated_by": who, "updated_at": stamp},
                    )
            if target is not None and target.status != "accepted":
                db["model_versions"].update(
                    (task, target.version), {"status": "accepted", "updated_by": who, "updated_at": stamp}
                )
        return self.newest_accepted_version(task, base_model=base_model)


_default: Store | None = None
_default_lock = threading.Lock()


def default_store() -> Store:
    """The process-wide store at `MMDEMO_DATA_DIR/mmdemo.db`, opened on first use.

    Reopened when `MMDEMO_DATA_DIR` changes (tests point each test at its own folder)."""
    global _default
    with _default_lock:
        if _default is None or _default.path != default_path():
            _default = Store()
        return _default
