"""A labeling job's auto-retrain setting: a fine-tuning run starts after every N newly settled labels."""

from __future__ import annotations

from mmdemo.data.db import StoreCore, StoreError
from mmdemo.data.jobs import Job


class RetrainRecords(StoreCore):
    def set_job_retraining(self, job_id: int, every: int, profile: str | None) -> Job:
        """Retrain after every `every` newly settled labels (0: never), for the model profile `profile`."""
        with self._write() as db:
            if self._get("jobs", job_id) is None:
                raise StoreError(f"no job #{job_id}")
            db.table("jobs").update(job_id, {"retrain_every": int(every), "retrain_profile": profile})
        return self.job(job_id)  # type: ignore[attr-defined,no-any-return]

    def settled_at_most(self, job_id: int, overlap: int) -> int:
        """An upper bound of the job's settled items, in two indexed counts: items with a review, or with
        submissions from the full overlap (whether those agree is for the labels reader)."""
        row = self._query(
            "SELECT COUNT(*) AS n FROM job_items WHERE job_id = ? AND (submitted >= ? OR id IN "
            "(SELECT item_id FROM reviews WHERE job_id = ?))",
            [job_id, overlap, job_id],
        )
        return int(row[0]["n"])

    def claim_retrain(self, job_id: int, seen: int, settled: int) -> bool:
        """Record that a run starts at `settled` labels, if no other process has since `seen` (the value
        this caller read): exactly one of several processes labeling at once starts the run."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE jobs SET retrained_at = ? WHERE id = ? AND retrained_at = ?", [settled, job_id, seen]
            )
            return cursor.rowcount == 1
