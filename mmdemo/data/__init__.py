"""The data layer: the only code that writes SQL.

`db` is the core (connection, lock, transactions, row mapping), `migrations` the schema's history, and one
module per kind of record (`media`, `predictions`, `judgements`, `label_sets`, `users`, `jobs`, `versions`)
adds its dataclasses and methods to `Store`. Import from here: `from mmdemo.data import Store, Job`.
"""

from mmdemo.data.db import ANONYMOUS, StoreError, now
from mmdemo.data.jobs import ItemScore, Job, JobItem, LabelRecord
from mmdemo.data.judgements import Judgement
from mmdemo.data.media import MediaItem
from mmdemo.data.migrations import MIGRATIONS, SCHEMA_VERSION
from mmdemo.data.predictions import Correction, Prediction
from mmdemo.data.store import Store, default_path, default_store
from mmdemo.data.users import UserRecord
from mmdemo.data.versions import VERSION_STATUSES, ModelVersion

__all__ = [
    "ANONYMOUS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "VERSION_STATUSES",
    "Correction",
    "ItemScore",
    "Job",
    "JobItem",
    "Judgement",
    "LabelRecord",
    "MediaItem",
    "ModelVersion",
    "Prediction",
    "Store",
    "StoreError",
    "UserRecord",
    "default_path",
    "default_store",
    "now",
]
