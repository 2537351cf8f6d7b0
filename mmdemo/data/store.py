"""The store: one object over the database, joining the record modules; and the process-wide one."""

from __future__ import annotations

import threading
from pathlib import Path

from mmdemo import config
from mmdemo.data.jobs import JobRecords
from mmdemo.data.judgements import JudgementRecords
from mmdemo.data.label_sets import LabelSetRecords
from mmdemo.data.media import MediaRecords
from mmdemo.data.migrations import SCHEMA_VERSION
from mmdemo.data.predictions import PredictionRecords
from mmdemo.data.retraining import RetrainRecords
from mmdemo.data.users import UserRecords
from mmdemo.data.versions import VersionRecords


def default_path() -> Path:
    return config.data_dir() / "mmdemo.db"


class Store(
    MediaRecords,
    PredictionRecords,
    JudgementRecords,
    LabelSetRecords,
    UserRecords,
    JobRecords,
    RetrainRecords,
    VersionRecords,
):
    """Typed access to the database. Safe to share between threads, and to open in several processes at
    once; one writer at a time."""

    def __init__(self, path: str | Path | None = None, *, migrate_to: int = SCHEMA_VERSION) -> None:
        super().__init__(path if path is not None else default_path(), migrate_to=migrate_to)


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
