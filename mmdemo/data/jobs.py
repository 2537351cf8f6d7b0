"""Labeling jobs: their items, the work queue (assignments), append-only submissions and reviews."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from mmdemo.data.db import StoreCore, StoreError, from_row, now

_FAILED = "!"  # ends a pre-fill claim whose try made no prediction


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
    ordering: str = "position"  # the queue's order: random, uncertainty, diverse; position (creation order)
    retrain_every: int = 0  # a fine-tuning run after every N newly settled labels; 0: never
    retrain_profile: str | None = None  # the model profile those runs train
    retrained_at: int = 0  # the settled count when the last automatic run started


@dataclass(frozen=True)
class ItemScore:
    """An item's rank score for one order (higher is asked first), and what made it: a model version
    ("name@version") for uncertainty, the embedder for diverse, a seed for random."""

    item_id: int
    job_id: int
    ordering: str
    score: float
    made_by: str
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


class JobRecords(StoreCore):
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
        ordering: str = "position",
    ) -> Job:
        """A job and its items, `(media_id, prompt)` pairs in order, written in one transaction."""
        stamp = now()
        with self._write() as db:
            if self._select("jobs", "name = ?", [name]):
                raise StoreError(f"a job named {name!r} exists already")
            jobs_table = db.table("jobs")
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
                    "ordering": ordering,
                }
            )
            job_id = jobs_table.last_pk
            db.table("job_items").insert_all(
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
        return self._record(Job, "jobs", job_id)

    def jobs(self, task: str | None = None) -> list[Job]:
        where, args = ("task = ?", [task]) if task else (None, [])
        return self._records(Job, "jobs", where, args, order_by="id")

    def job_item(self, item_id: int) -> JobItem | None:
        return self._record(JobItem, "job_items", item_id)

    def job_items(self, job_id: int) -> list[JobItem]:
        return self._records(JobItem, "job_items", "job_id = ?", [job_id], order_by="position")

    def set_item_prediction(self, item_id: int, prediction_id: int) -> None:
        with self._write() as db:
            db.table("job_items").update(item_id, {"prediction_id": prediction_id, "prefill_claim": None})

    # -- the pre-fill, made once per item (single-flight across threads and processes) ---------------
    def claim_prefill(self, item_id: int, *, stale_before: str) -> tuple[int | None, str]:
        """`(prediction_id, "done")` when the item has its prediction; else `(None, "mine")` when the caller
        now holds the claim to make it (nobody held one, or it is older than `stale_before`), `(None,
        "busy")` while another caller makes it, `(None, "failed")` when the last try made none."""
        with self._write() as db:
            row = db.execute(
                "SELECT prediction_id, prefill_claim FROM job_items WHERE id = ?", [item_id]
            ).fetchone()
            if row is None:
                raise StoreError(f"no item #{item_id}")
            prediction_id, claim = row
            if prediction_id is not None:
                return prediction_id, "done"
            if claim is None or claim < stale_before:
                db.execute("UPDATE job_items SET prefill_claim = ? WHERE id = ?", [now(), item_id])
                return None, "mine"
            return None, "failed" if claim.endswith(_FAILED) else "busy"

    def fail_prefill(self, item_id: int) -> None:
        """No prediction could be made: openers until the claim goes stale label without one."""
        with self._write() as db:
            db.execute("UPDATE job_items SET prefill_claim = ? WHERE id = ?", [now() + _FAILED, item_id])

    # -- the queue's order ------------------------------------------------------------------------
    def set_job_ordering(self, job_id: int, ordering: str) -> Job:
        with self._write() as db:
            if self._get("jobs", job_id) is None:
                raise StoreError(f"no job #{job_id}")
            db.table("jobs").update(job_id, {"ordering": ordering})
        return self.job(job_id)  # type: ignore[return-value]

    def save_item_scores(self, job_id: int, ordering: str, scores: dict[int, float], made_by: str) -> None:
        """Store the items' scores for one order, replacing that order's scores of the same items."""
        stamp = now()
        with self._write() as db:
            db.table("item_scores").upsert_all(
                (
                    {
                        "item_id": item_id,
                        "job_id": job_id,
                        "ordering": ordering,
                        "score": float(score),
                        "made_by": made_by,
                        "created_at": stamp,
                    }
                    for item_id, score in scores.items()
                ),
                pk=("item_id", "ordering"),
            )

    def item_scores(self, job_id: int, ordering: str) -> dict[int, ItemScore]:
        rows = self._records(ItemScore, "item_scores", "job_id = ? AND ordering = ?", [job_id, ordering])
        return {row.item_id: row for row in rows}

    def unscored_items(
        self, job_id: int, overlap: int, ordering: str, made_by: str, limit: int | None
    ) -> list[tuple[JobItem, bool]]:
        """Up to `limit` items the queue may still hand out (held by fewer than `overlap`) with no
        `ordering` score made by `made_by`, by position, each with whether it has a submitted label.
        Indexed: the `held`/`submitted` counts, and the scores' primary key; no assignment is read."""
        rows = self._query(
            "SELECT ji.*, ji.submitted > 0 AS labeled FROM job_items ji "
            "WHERE ji.job_id = ? AND ji.held < ? AND NOT EXISTS (SELECT 1 FROM item_scores s "
            "WHERE s.item_id = ji.id AND s.ordering = ? AND s.made_by = ?) ORDER BY ji.position LIMIT ?",
            [job_id, overlap, ordering, made_by, -1 if limit is None else limit],
        )
        return [(from_row(JobItem, row), bool(row["labeled"])) for row in rows]

    # -- the work queue ----------------------------------------------------------------------------
    def assign_next(
        self,
        job_id: int,
        user: str,
        overlap: int,
        *,
        release_prefix: str = "",
        release_before: str = "",
        client: str | None = None,
        max_open: int | None = None,
        max_open_client: int | None = None,
    ) -> JobItem | None:
        """Hand `user` one more item of the job that fewer than `overlap` annotators hold, or None.

        One INSERT ... SELECT in one `BEGIN IMMEDIATE` transaction: two annotators (threads or processes)
        asking at once can never push an item past its overlap. Items already started by others come
        first, so that items reach their full overlap (and agreement) early; then the job's order: the
        highest stored score for it (`rank`, copied from `item_scores` by triggers), unscored items last,
        by position. The per-item `held` count and `rank` (kept by triggers) and their index make every
        order a short index walk, flat in the number of items and labels. Open (never submitted) assignments of users named
        `release_prefix`... untouched since `release_before` are released first, in the same transaction.
        `max_open` caps the user's open assignments in the job, `max_open_client` those of every user
        from `client` (anonymous visitors)."""
        stamp = now()
        caps, cap_args = "", []
        if max_open is not None:
            caps += (
                " AND (SELECT COUNT(*) FROM assignments o WHERE o.job_id = ? AND o.user = ? "
                "AND o.status != 'submitted') < ?"
            )
            cap_args += [job_id, user, max_open]
        if max_open_client is not None and client is not None:
            caps += (
                " AND (SELECT COUNT(*) FROM assignments o WHERE o.job_id = ? AND o.client = ? "
                "AND o.status != 'submitted') < ?"
            )
            cap_args += [job_id, client, max_open_client]
        with self._write() as db:
            if release_prefix and release_before:
                db.execute(
                    "DELETE FROM assignments WHERE job_id = ? AND status != 'submitted' "
                    "AND updated_at < ? AND substr(user, 1, ?) = ?",
                    [job_id, release_before, len(release_prefix), release_prefix],
                )
            cursor = db.execute(
                "INSERT INTO assignments (job_id, item_id, user, status, client, created_at, updated_at) "
                "SELECT ?, ji.id, ?, 'assigned', ?, ?, ? FROM job_items ji INDEXED BY job_items_ranked "
                "WHERE ji.job_id = ? AND ji.held < ? "
                "AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = ji.id AND a.user = ?)"
                f"{caps} ORDER BY ji.held DESC, ji.rank DESC, ji.position LIMIT 1",
                [job_id, user, client, stamp, stamp, job_id, overlap, user, *cap_args],
            )
            if cursor.rowcount == 0:
                return None
            row = db.execute("SELECT item_id FROM assignments WHERE id = ?", [cursor.lastrowid]).fetchone()
        return self.job_item(row[0])

    def open_assignments(self, job_id: int, *, user: str | None = None, client: str | None = None) -> int:
        """How many open (not submitted) assignments of the job `user`, or every user from `client`, holds."""
        column, value = ("user", user) if user is not None else ("client", client)
        rows = self._query(
            f"SELECT COUNT(*) AS n FROM assignments WHERE job_id = ? AND {column} = ? AND status != 'submitted'",
            [job_id, value],
        )
        return rows[0]["n"]

    def queue_counts(self, job_id: int, user: str, overlap: int) -> dict[str, int]:
        """The counts an annotator's progress shows, each one indexed lookup: the user's submitted and
        skipped items, the job's items, and its items with `overlap` submitted labels."""
        mine = self._query(
            "SELECT status, COUNT(*) AS n FROM assignments WHERE job_id = ? AND user = ? GROUP BY status",
            [job_id, user],
        )
        job = self._query(
            "SELECT COUNT(*) AS total, "
            "(SELECT COUNT(*) FROM job_items WHERE job_id = ? AND submitted >= ?) AS complete "
            "FROM job_items WHERE job_id = ?",
            [job_id, overlap, job_id],
        )[0]
        by_status = {row["status"]: row["n"] for row in mine}
        return {
            "submitted": by_status.get("submitted", 0),
            "skipped": by_status.get("skipped", 0),
            "total": job["total"],
            "complete": job["complete"],
        }

    def add_labels_bulk(self, job_id: int, labels: list[tuple[int, str, Any]]) -> None:
        """Many `(item_id, user, value)` labels at once, in one transaction (imports and benchmarks): each a
        submission, and the user's submitted assignment of the item (a repeated pair is a correction)."""
        stamp = now()
        with self._write() as db:
            db.table("assignments").insert_all(
                (
                    {
                        "job_id": job_id,
                        "item_id": item_id,
                        "user": user,
                        "status": "submitted",
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                    for item_id, user, _ in labels
                ),
                batch_size=1000,
                ignore=True,
            )
            db.table("submissions").insert_all(
                (
                    {
                        "job_id": job_id,
                        "item_id": item_id,
                        "user": user,
                        "value": json.dumps(value),
                        "anonymous": 0,
                        "submission_id": None,
                        "note": None,
                        "created_at": stamp,
                    }
                    for item_id, user, value in labels
                ),
                batch_size=1000,
            )

    def assigned_items(
        self, job_id: int, user: str, status: str, *, limit: int | None = None
    ) -> list[JobItem]:
        """`user`'s items of the job in one status (assigned, skipped, submitted), oldest first."""
        return self._query_records(
            JobItem,
            "SELECT ji.* FROM assignments a JOIN job_items ji ON ji.id = a.item_id "
            "WHERE a.job_id = ? AND a.user = ? AND a.status = ? ORDER BY a.updated_at, a.id"
            + (f" LIMIT {int(limit)}" if limit is not None else ""),
            [job_id, user, status],
        )

    def assignment_status(self, item_id: int, user: str) -> str | None:
        rows = self._select("assignments", "item_id = ? AND user = ?", [item_id, user])
        return rows[0]["status"] if rows else None

    def set_assignment_status(self, item_id: int, user: str, status: str) -> None:
        with self._write() as db:
            self._set_status(db, item_id, user, status, now())

    @staticmethod
    def _set_status(db: sqlite_utils.Database, item_id: int, user: str, status: str, stamp: str) -> None:
        cursor = db.execute(
            "UPDATE assignments SET status = ?, updated_at = ? WHERE item_id = ? AND user = ?",
            [status, stamp, item_id, user],
        )
        if cursor.rowcount == 0:
            raise StoreError(f"item #{item_id} is not assigned to {user}")

    def assignment_counts(self, job_id: int) -> dict[int, int]:
        """How many annotators hold each item of the job (any status)."""
        rows = self._query(
            "SELECT item_id, COUNT(*) AS n FROM assignments WHERE job_id = ? GROUP BY item_id", [job_id]
        )
        return {row["item_id"]: row["n"] for row in rows}

    # -- labels: submissions and review decisions (append-only) ----------------------------------
    def add_submission(self, item: JobItem, user: str, value: Any, *, anonymous: bool) -> LabelRecord:
        """Append `user`'s label for an item assigned to them and mark the assignment done, atomically."""
        stamp = now()
        with self._write() as db:
            self._set_status(db, item.id, user, "submitted", stamp)
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
        labels = db.table(table)
        labels.insert(record)
        return from_row(LabelRecord, {**record, "id": labels.last_pk})

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
        return self._records(LabelRecord, table, " AND ".join(clauses), args, order_by="id")
