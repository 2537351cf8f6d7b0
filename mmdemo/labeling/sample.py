"""The sample job an open demo offers: caption the sample photos, no accounts and no admin needed."""

from __future__ import annotations

import threading
from pathlib import Path

from mmdemo import accounts, config
from mmdemo.data import Job, Store
from mmdemo.labeling import jobs
from mmdemo.labeling import ordering as orders

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "images"
NAME = "sample photos"
PHOTOS = ("cat", "coffee", "motorcycle", "rocket", "flower", "astronaut", "clock", "coins")
_LOCK = threading.Lock()  # two visitors pressing at once get the same job, not two


def offered(store: Store | None = None) -> bool:
    """An open demo (nobody signs in here) where anonymous visitors may save labels."""
    return config.anonymous_writes() and not accounts.accounts_exist(store)


def start(user: str, *, store: Store | None = None) -> Job:
    """The sample job (made on the first call): caption the sample photos, pre-filled by the model."""
    if not offered(store):
        raise jobs.LabelingError(
            "the sample job is for open demos: here an admin creates jobs (Labeling → Admin)"
        )
    accounts.require_role(user, accounts.ANNOTATOR, store=store)
    store = jobs.store_or_default(store)
    with _LOCK:
        existing = [job for job in store.jobs() if job.name == NAME]
        if existing:
            return existing[0]
        files = [ASSETS / f"{name}.jpg" for name in PHOTOS if (ASSETS / f"{name}.jpg").exists()]
        return jobs.create_job(
            None, NAME, "caption", files, source="sample photos", ordering=orders.POSITION, store=store
        )
