"""The database core: one SQLite connection shared by threads, its lock, transactions and row mapping.

Every record module (`media`, `predictions`, ...) is a mixin over `StoreCore`; `store.Store` joins them.
A dataclass field typed `Any`, `dict[...]` or `list[...]` is a JSON text column, one typed `bool` is 0/1.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar, get_origin, get_type_hints

import sqlite_utils
from sqlite_utils.db import NotFoundError

from mmdemo.data import migrations

ANONYMOUS = "anonymous"
R = TypeVar("R")


class StoreError(RuntimeError):
    pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _json_or_empty(empty: Callable[[], Any]) -> Callable[[str | None], Any]:
    return lambda text: json.loads(text) if text else empty()


@functools.cache
def _decoders(cls: type) -> dict[str, Callable[[Any], Any]]:
    """How each column of `cls`'s table turns back into its field's value (absent: as stored)."""
    hints = get_type_hints(cls)
    decoders: dict[str, Callable[[Any], Any]] = {}
    for field in fields(cls):
        hint = hints[field.name]
        if hint is bool:
            decoders[field.name] = bool
        elif hint is Any:
            decoders[field.name] = _json_or_empty(lambda: None)
        elif get_origin(hint) in (dict, list):
            decoders[field.name] = _json_or_empty(get_origin(hint))
    return decoders


def _same(value: Any) -> Any:
    return value


def from_row(cls: type[R], row: Mapping[str, Any]) -> R:
    """The dataclass `cls` from a table row: its fields only, JSON and flag columns decoded."""
    decoders = _decoders(cls)
    values = {
        field.name: decoders.get(field.name, _same)(row[field.name])
        for field in fields(cls)  # type: ignore[arg-type]
        if field.name in row
    }
    return cls(**values)


class StoreCore:
    """The connection (WAL, foreign keys, 30 s busy timeout), the lock and the schema. Safe to share
    between threads; one writer at a time."""

    def __init__(self, path: str | Path, *, migrate_to: int = migrations.SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(connection)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        # Reads hold the lock too: a read on the shared connection while another thread commits breaks
        # sqlite-utils' savepoints ("no such savepoint") under many concurrent annotators.
        self._lock = threading.RLock()
        self.migrate(migrate_to)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return migrations.schema_version(self.db)

    def migrate(self, target: int = migrations.SCHEMA_VERSION) -> None:
        with self._lock:
            try:
                migrations.migrate(self.db, target)
            except migrations.NewerSchema as newer:
                raise StoreError(
                    f"{self.path} has schema version {newer.found}, newer than this mmdemo knows "
                    f"({migrations.SCHEMA_VERSION}); upgrade mmdemo"
                ) from None

    def close(self) -> None:
        self.db.close()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: self.db.table(name).count for name in ("media", "predictions", "corrections")}

    # -- for the record modules ---------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        with self._lock, self.db.atomic():  # every statement of one write commits together, or none does
            yield self.db

    def _get(self, table: str, pk: Any) -> dict[str, Any] | None:
        """The row with primary key `pk` (a tuple for a compound key), or None."""
        with self._lock:
            try:
                return self.db.table(table).get(pk)
            except NotFoundError:
                return None

    def _select(
        self,
        table: str,
        where: str | None = None,
        args: Sequence[Any] = (),
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.table(table).rows_where(where, list(args), order_by=order_by, limit=limit))

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, list(args)))

    def _record(self, cls: type[R], table: str, pk: Any) -> R | None:
        row = self._get(table, pk)
        return from_row(cls, row) if row is not None else None

    def _records(
        self,
        cls: type[R],
        table: str,
        where: str | None = None,
        args: Sequence[Any] = (),
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[R]:
        return [from_row(cls, row) for row in self._select(table, where, args, order_by, limit)]

    def _query_records(self, cls: type[R], sql: str, args: Sequence[Any] = ()) -> list[R]:
        return [from_row(cls, row) for row in self._query(sql, args)]

    def _save(self, table: str, pk: str, row: dict[str, Any]) -> None:
        """Insert or replace the row keyed by `row[pk]`; a replaced row keeps its `created_at`."""
        stamp = now()
        with self._write() as db:
            existing = self._get(table, row[pk])
            created = existing["created_at"] if existing else stamp
            db.table(table).upsert({**row, "created_at": created, "updated_at": stamp}, pk=pk)
