"""One process of `test_labeling_scale`'s single-flight test: opens the one item of a job as USER with a
slow predictor, once GO_FILE exists, and prints the pre-fill it was shown.

Run as `python -m tests.prefill_worker DB JOB_ID USER READY_FILE GO_FILE`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mmdemo.data import Store
from mmdemo.labeling import queue
from tests.labeling_helpers import fake_predictor


def slow_predictor(job, item, media, store):  # type: ignore[no-untyped-def]
    time.sleep(0.5)  # a model call: long enough that every opener arrives while it runs
    return fake_predictor(job, item, media, store)


def main(db: str, job_id: int, user: str, ready: Path, go: Path) -> str:
    store = Store(db)
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
    view = queue.next_item(job_id, user, predictor=slow_predictor, store=store)
    return view.prefill


if __name__ == "__main__":
    db, job_id, user, ready, go = sys.argv[1:]
    print(main(db, int(job_id), user, Path(ready), Path(go)))
