"""Labeling jobs: their items, the work queue (assignments), append-only submissions and reviews."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from mmdemo.data.db import StoreCore, StoreError, from_row, now


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
            db.table("job_items").update(item_id, {"prediction_id": prediction_id})

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

    # -- the work queue ----------------------------------------------------------------------------
    def assign_next(
        self, job_id: int, user: str, overlap: int, *, release_prefix: str = "", release_before: str = ""
    ) -> JobItem | None:
        """Hand `user` one more item of the job that fewer than `overlap` annotators hold, or None.

        One INSERT ... SELECT under the store's lock and SQLite's write lock: two annotators (threads or
        processes) asking at once can never push an item past its overlap. Items already started by
        others come first, so that items reach their full overlap (and agreement) early; then the job's
        order: the highest stored score for it (`item_scores`), unscored items last, by position. Open (never
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
                "JOIN jobs j ON j.id = ji.job_id "
                "LEFT JOIN item_scores s ON s.item_id = ji.id AND s.ordering = j.ordering "
                "WHERE ji.job_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = ji.id AND a.user = ?) "
                "AND (SELECT COUNT(*) FROM assignments a WHERE a.item_id = ji.id) < ? "
                "ORDER BY (SELECT COUNT(*) FROM assignments a WHERE a.item_id = ji.id) DESC, "
                "s.score IS NULL, s.score DESC, ji.position "
                "LIMIT 1",
                [job_id, user, stamp, stamp, job_id, user, overlap],
            )
            if cursor.rowcount == 0:
                return None
            row = db.execute("SELECT item_id FROM assignments WHERE id = ?", [cursor.lastrowid]).fetchone()
        return self.job_item(row[0])

    def assigned_items(self, job_id: int, user: str, status: str) -> list[JobItem]:
        """`user`'s items of the job in one status (assigned, skipped, submitted), oldest first."""
        return self._query_records(
            JobItem,
            "SELECT ji.* FROM assignments a JOIN job_items ji ON ji.id = a.item_id "
            "WHERE a.job_id = ? AND a.user = ? AND a.status = ? ORDER BY a.updated_at, a.id",
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
