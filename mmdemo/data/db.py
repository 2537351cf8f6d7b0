"""The database core: one SQLite connection shared by threads, its lock, transactions and row mapping.

Several processes may use one database file at once (the app, CLI commands, workers): writes take SQLite's
write lock up front and wait their turn, reads run beside them (WAL), and setting up a new database or
migrating an old one happens in one process at a time, under `<database>.lock`.

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
from filelock import FileLock, Timeout
from sqlite_utils.db import NotFoundError

from mmdemo import config
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
    """The connection (WAL, foreign keys, busy timeout), the lock and the schema. Safe to share between
    threads, and between processes on one database file: each write takes SQLite's write lock up front,
    waiting up to `MMDEMO_DB_BUSY_TIMEOUT_S` for another process's write to finish; reads run alongside."""

    def __init__(self, path: str | Path, *, migrate_to: int = migrations.SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout_s = config.db_busy_timeout_s()
        connection = sqlite3.connect(self.path, check_same_thread=False, timeout=self.busy_timeout_s)
        self.db = sqlite_utils.Database(connection)
        self.db.execute("PRAGMA foreign_keys = ON")
        # Reads hold the lock too: a read on the shared connection while another thread commits breaks
        # sqlite-utils' savepoints ("no such savepoint") under many concurrent annotators.
        self._lock = threading.RLock()
        # Processes opening one database at once switch it to WAL and migrate it one at a time.
        self._setup_lock = FileLock(f"{self.path}.lock", timeout=self.busy_timeout_s)
        if not self._is_set_up(migrate_to):
            self.migrate(migrate_to)

    def _is_set_up(self, target: int) -> bool:
        """Whether the database is in WAL mode with its schema at `target` already, so that opening it
        takes no lock (the usual case: every process after the first)."""
        with self._lock:
            return self.db.journal_mode == "wal" and migrations.is_current(self.db, target)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return migrations.schema_version(self.db)

    def migrate(self, target: int = migrations.SCHEMA_VERSION) -> None:
        """Switch to WAL and apply the pending steps up to `target`, all in one transaction, holding the
        file lock beside the database: a process that waited for another re-reads what that one applied,
        so no step ever runs twice."""
        with self._lock, self._holding(self._setup_lock):
            self.db.enable_wal()  # outside any transaction, and no other process is setting it up
            try:
                with self._write() as db:
                    migrations.migrate(db, target)
            except migrations.NewerSchema as newer:
                raise StoreError(
                    f"{self.path} has schema version {newer.found}, newer than this mmdemo knows "
                    f"({migrations.SCHEMA_VERSION}); upgrade mmdemo"
                ) from None

    @contextmanager
    def _holding(self, lock: FileLock) -> Iterator[None]:
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"another process has been setting up {self.path} for over {self.busy_timeout_s:g} s; "
                "try again (or raise MMDEMO_DB_BUSY_TIMEOUT_S)"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def close(self) -> None:
        self.db.close()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: self.db.table(name).count for name in ("media", "predictions", "corrections")}

    # -- for the record modules ---------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction: every statement in it commits together, or none does.

        `BEGIN IMMEDIATE` takes SQLite's write lock before the first statement, waiting out the busy timeout
        while another process writes. A deferred `BEGIN` would read first and then fail at once with
        "database is locked" when it asked for the write lock, never waiting. A write inside a write
        becomes a savepoint of the outer transaction."""
        with self._lock:
            if self.db.conn.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            try:
                self.db.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                raise StoreError(
                    f"{self.path} stayed locked by another process's write for {self.busy_timeout_s:g} s; "
                    "try again (or raise MMDEMO_DB_BUSY_TIMEOUT_S)"
                ) from None
            try:
                yield self.db
                self.db.conn.execute("COMMIT")
            except BaseException:
                self.db.rollback()  # a no-op when the error already ended the transaction
                raise

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
