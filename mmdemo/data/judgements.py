"""Relevance judgements of search results: append-only, a later judgement of the same pair supersedes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmdemo.data.db import ANONYMOUS, StoreCore, StoreError, now

if TYPE_CHECKING:
    from mmdemo.serving.models.base import ModelInfo


@dataclass(frozen=True)
class Judgement:
    id: int
    query_text: str | None
    query_media_id: str | None
    result_media_id: str
    rank: int
    score: float
    relevant: bool
    embedder_name: str
    embedder_version: str
    index_name: str
    index_version: int
    user: str
    created_at: str
    adapter_version: str = "base"  # the retrieval adapter that ranked the result


class JudgementRecords(StoreCore):
    def add_judgement(
        self,
        *,
        result_media_id: str,
        rank: int,
        score: float,
        relevant: bool,
        embedder: ModelInfo,
        index_name: str,
        index_version: int,
        query_text: str | None = None,
        query_media_id: str | None = None,
        user: str | None = None,
        adapter_version: str = "base",
    ) -> Judgement:
        if bool(query_text) == bool(query_media_id):
            raise StoreError("a judgement needs exactly one query: a text or an image")
        if self._get("media", result_media_id) is None:
            raise StoreError(f"no media item {result_media_id[:12]} to judge")
        with self._write() as db:
            table = db.table("judgements")
            table.insert(
                {
                    "query_text": query_text or None,
                    "query_media_id": query_media_id or None,
                    "result_media_id": result_media_id,
                    "rank": int(rank),
                    "score": float(score),
                    "relevant": int(bool(relevant)),
                    "embedder_name": embedder.name,
                    "embedder_version": embedder.version,
                    "index_name": index_name,
                    "index_version": int(index_version),
                    "adapter_version": adapter_version,
                    "user": user or ANONYMOUS,
                    "created_at": now(),
                }
            )
            judgement_id = table.last_pk
        return self._record(Judgement, "judgements", judgement_id)  # type: ignore[return-value]

    def judgements(
        self, *, judgement_id: int | None = None, result_media_id: str | None = None
    ) -> list[Judgement]:
        if judgement_id is not None:
            where, args = "id = ?", [judgement_id]
        elif result_media_id is not None:
            where, args = "result_media_id = ?", [result_media_id]
        else:
            where, args = None, []
        return self._records(Judgement, "judgements", where, args, order_by="id")
