"""Predictions with their provenance, and the append-only corrections people make to them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmdemo.data.db import ANONYMOUS, StoreCore, StoreError, now

if TYPE_CHECKING:
    from mmdemo.serving.models.base import ModelInfo


@dataclass(frozen=True)
class Prediction:
    id: int
    task: str
    media_id: str | None
    input: Any
    output: Any
    model_name: str
    model_version: str
    model_source: str | None
    profile: str
    device: str | None
    params: dict[str, Any]
    latency_ms: float
    user: str
    created_at: str


@dataclass(frozen=True)
class Correction:
    id: int
    prediction_id: int
    output: Any
    user: str
    note: str | None
    created_at: str


class PredictionRecords(StoreCore):
    def record_prediction(
        self,
        task: str,
        *,
        media_id: str | None,
        input: Any,
        output: Any,
        model: ModelInfo,
        params: dict[str, Any] | None = None,
        latency_ms: float = 0.0,
        user: str | None = None,
    ) -> Prediction:
        with self._write() as db:
            table = db.table("predictions")
            table.insert(
                {
                    "task": task,
                    "media_id": media_id,
                    "input": json.dumps(input),
                    "output": json.dumps(output),
                    "model_name": model.name,
                    "model_version": model.version,
                    "model_source": model.source,
                    "profile": model.profile,
                    "device": model.device,
                    "params": json.dumps(params or {}),
                    "latency_ms": float(latency_ms),
                    "user": user or ANONYMOUS,
                    "created_at": now(),
                }
            )
            prediction_id = table.last_pk
        return self.prediction(prediction_id)  # type: ignore[arg-type,return-value]

    def prediction(self, prediction_id: int) -> Prediction | None:
        return self._record(Prediction, "predictions", prediction_id)

    def predictions(self, task: str | None = None, limit: int | None = None) -> list[Prediction]:
        where, args = ("task = ?", [task]) if task else (None, [])
        return self._records(Prediction, "predictions", where, args, order_by="id", limit=limit)

    def predictions_for_media(
        self, media_id: str, task: str, limit: int = 100, *, user: str | None = None
    ) -> list[Prediction]:
        """The newest `limit` predictions of `task` on one media item, oldest first (question history);
        with `user`, only the predictions that user made."""
        mine, args = ("AND user = ? ", [user]) if user is not None else ("", [])
        return self._query_records(
            Prediction,
            f"SELECT * FROM (SELECT * FROM predictions WHERE media_id = ? AND task = ? {mine}"
            "ORDER BY id DESC LIMIT ?) ORDER BY id",
            [media_id, task, *args, limit],
        )

    def add_correction(
        self, prediction_id: int, output: Any, *, user: str | None = None, note: str | None = None
    ) -> Correction:
        """Append a correction. Earlier corrections of the same prediction stay, as history."""
        if self.prediction(prediction_id) is None:
            raise StoreError(f"no prediction #{prediction_id} to correct")
        with self._write() as db:
            table = db.table("corrections")
            table.insert(
                {
                    "prediction_id": prediction_id,
                    "output": json.dumps(output),
                    "user": user or ANONYMOUS,
                    "note": note,
                    "created_at": now(),
                }
            )
            correction_id = table.last_pk
        return self._record(Correction, "corrections", correction_id)  # type: ignore[return-value]

    def corrections(self, prediction_id: int | None = None, task: str | None = None) -> list[Correction]:
        if prediction_id is not None:
            return self._records(Correction, "corrections", "prediction_id = ?", [prediction_id], "id")
        if task is not None:
            return self._query_records(
                Correction,
                "SELECT c.* FROM corrections c JOIN predictions p ON p.id = c.prediction_id "
                "WHERE p.task = ? ORDER BY c.id",
                [task],
            )
        return self._records(Correction, "corrections", order_by="id")

    def latest_correction(self, prediction_id: int) -> Correction | None:
        history = self.corrections(prediction_id)
        return history[-1] if history else None
