"""Labeling queue benchmark: next item and submit, p50/p95, in a job of 5,000 items (the most a job may have)
holding 1k, 20k and 100k submissions, against the queue as it was before (kept below as `old_next`: the
correlated-count assignment and a progress that reads every submission of the job), in the same run.

The databases are built with the data layer's bulk insert (`Store.add_labels_bulk`). Timed calls are those
of newcomer annotators (one at a time, as the app serves one request): each asks for the next item and
submits it, `--rounds` times. The pre-fill is left out (`predictor=None`): it is one model call per item,
made once, and is not the queue's cost. Goal: next p50 <= 20 ms at 100k submissions.

    python bench/labeling_queue.py            # a few minutes on two cores (the old queue is slow)
    python bench/labeling_queue.py --rounds 50 --old-rounds 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from mmdemo import accounts
from mmdemo.data import ANONYMOUS, Job, Store
from mmdemo.data.db import now
from mmdemo.labeling import queue
from mmdemo.labeling.jobs import get_job

ITEMS = 5000
OVERLAP = 20
SCALES = (1_000, 20_000, 100_000)
GOAL_P50_MS = 20.0


def base_job(folder: Path) -> Path:
    """A database holding one 5,000-item caption job and no labels, built once and copied per scale."""
    store = Store(folder / "base.db")
    media = [
        store.add_media(f"item{i}.png", "image", data=f"item {i}".encode(), width=1, height=1)
        for i in range(ITEMS)
    ]
    store.create_job(
        "bench",
        "caption",
        items=[(m.id, "") for m in media],
        labels=[],
        prompts=[],
        overlap=OVERLAP,
        source="bench",
        created_by="bench",
    )
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return folder / "base.db"


def build(base: Path, submissions: int) -> tuple[Store, Job]:
    """The base job with `submissions` labels: whole passes over the items by bulk annotators (at most 19,
    so that newcomers still find room under the overlap), the rest corrections by the last of them."""
    path = base.with_name(f"queue-{submissions}.db")
    shutil.copyfile(base, path)
    store = Store(path)
    job = store.jobs()[0]
    items = [item.id for item in store.job_items(job.id)]
    labels = [
        (items[n % ITEMS], f"bulk{min(n // ITEMS, OVERLAP - 2)}", "a label") for n in range(submissions)
    ]
    store.add_labels_bulk(job.id, labels)
    return store, job


# -- the queue before this change, for the baseline --------------------------------------------------
def old_progress(job: Job, user: str, store: Store) -> queue.Progress:
    per_item = Counter(item_id for item_id, _ in {(s.item_id, s.user) for s in store.submissions(job.id)})
    return queue.Progress(
        done_by_you=len(store.assigned_items(job.id, user, "submitted")),
        skipped_by_you=len(store.assigned_items(job.id, user, "skipped")),
        total_items=len(store.job_items(job.id)),
        complete_items=sum(count >= job.overlap for count in per_item.values()),
    )


def old_next(job_id: int, user: str, store: Store) -> int | None:
    accounts.require_role(user, accounts.ANNOTATOR, store=store)
    job = get_job(job_id, store)
    open_items = store.assigned_items(job.id, user, "assigned")
    if open_items:
        item_id = open_items[0].id
    else:
        stamp = now()
        before = (datetime.now(timezone.utc) - timedelta(minutes=30)).isoformat(timespec="milliseconds")
        with store._write() as db:
            db.execute(
                "DELETE FROM assignments WHERE job_id = ? AND status != 'submitted' "
                "AND substr(user, 1, ?) = ? AND updated_at < ?",
                [job.id, len(ANONYMOUS) + 1, f"{ANONYMOUS}:", before],
            )
            cursor = db.execute(
                "INSERT INTO assignments (job_id, item_id, user, status, created_at, updated_at) "
                "SELECT ?, ji.id, ?, 'assigned', ?, ? FROM job_items ji "
                "WHERE ji.job_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = ji.id AND a.user = ?) "
                "AND (SELECT COUNT(*) FROM assignments a WHERE a.item_id = ji.id) < ? "
                "ORDER BY (SELECT COUNT(*) FROM assignments a WHERE a.item_id = ji.id) DESC, ji.position "
                "LIMIT 1",
                [job.id, user, stamp, stamp, job.id, user, job.overlap],
            )
            if cursor.rowcount == 0:
                return None
            item_id = db.execute(
                "SELECT item_id FROM assignments WHERE id = ?", [cursor.lastrowid]
            ).fetchone()[0]
    store.submissions(job.id, item_id=item_id, user=user)
    old_progress(job, user, store)
    return item_id


# -- timing ---------------------------------------------------------------------------------------------
def new_next(job_id: int, user: str, store: Store) -> int | None:
    view = queue.next_item(job_id, user, predictor=None, store=store)
    return view.item.id if view else None


def measure(store: Store, job: Job, next_fn, prefix: str, rounds: int, users: int) -> tuple[list, list]:
    names = [f"{prefix}{n}" for n in range(users)]
    for name in names:
        accounts.add_user(name, "annotator", None, oauth=True, store=store)
    next_ms, submit_ms = [], []
    for _ in range(rounds):
        for name in names:
            started = time.perf_counter()
            item_id = next_fn(job.id, name, store)
            next_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            queue.submit(job.id, item_id, name, "a bench label", store=store)
            submit_ms.append((time.perf_counter() - started) * 1000)
    return next_ms, submit_ms


def machine_note() -> str:
    """The queue is single-threaded SQLite; what else the machine ran is the noise to read it against."""
    return f"1 thread, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="next+submit per newcomer")
    parser.add_argument(
        "--old-rounds", type=int, default=2, help="the same for the old queue (seconds a call)"
    )
    parser.add_argument("--users", type=int, default=5, help="newcomer annotators per variant")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mmdemo-bench-queue-") as folder:
        base = base_job(Path(folder))
        for scale in SCALES:
            started = time.perf_counter()
            store, job = build(base, scale)
            built_s = time.perf_counter() - started
            for variant, next_fn, rounds in (
                ("new", new_next, args.rounds),
                ("old", old_next, args.old_rounds),
            ):
                next_ms, submit_ms = measure(store, job, next_fn, variant, rounds, args.users)
                rows.append(
                    (scale, variant, p(next_ms, 50), p(next_ms, 95), p(submit_ms, 50), p(submit_ms, 95))
                )
                print(
                    f"  {scale:>7,} submissions ({built_s:.1f} s to build): {variant} done", file=sys.stderr
                )
            store.close()
    print(
        f"{ITEMS} items, overlap {OVERLAP}; {args.users} newcomers x {args.rounds} (old: {args.old_rounds}) "
        f"next+submit each, one at a time; ms; {machine_note()}"
    )
    header = ("submissions", "queue", "next p50", "next p95", "submit p50", "submit p95")
    print("  ".join(f"{h:<5}" if h == "queue" else f"{h:>{max(8, len(h))}}" for h in header))
    for scale, variant, n50, n95, s50, s95 in rows:
        print(f"{scale:>11,}  {variant:<5}  {n50:>8.2f}  {n95:>8.2f}  {s50:>10.2f}  {s95:>10.2f}")
    at_largest = next(row for row in rows if row[0] == SCALES[-1] and row[1] == "new")
    verdict = "met" if at_largest[2] <= GOAL_P50_MS else "missed"
    print(f"goal next p50 <= {GOAL_P50_MS:g} ms at {SCALES[-1]:,}: {verdict} ({at_largest[2]:.2f} ms)")


if __name__ == "__main__":
    main()
