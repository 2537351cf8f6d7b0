"""The public API's search endpoints: by text, by image, judging a result, adding images."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo import accounts
from mmdemo.search import retrieval
from mmdemo.search.retrieval import Search
from mmdemo.services import Services
from mmdemo.ui.common import current_user, visitor

DEFAULT_K = 8


def search_dict(found: Search) -> dict[str, Any]:
    return {
        "query": found.query_text,
        "query_image": found.query_path,
        "index": found.index_name,
        "index_version": found.index_version,
        "embedder": found.embedder.name,
        "ranked_by": found.adapter_version,
        "results": [
            {"rank": r.rank, "name": r.name, "score": round(r.score, 6), "media_id": r.media_id}
            for r in found.results
        ],
    }


class LastSearches:
    """Each client's last search (by Gradio session), which `judge` refers to by rank. Kept here, not in a
    gr.State output: MCP tools cannot return State."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._by_session: OrderedDict[str, Search] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, request: gr.Request | None, found: Search) -> None:
        with self._lock:
            self._by_session[_session(request)] = found
            self._by_session.move_to_end(_session(request))
            while len(self._by_session) > self.keep:
                self._by_session.popitem(last=False)

    def get(self, request: gr.Request | None) -> Search | None:
        with self._lock:
            return self._by_session.get(_session(request))


def _session(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", None) or "")


@dataclass(frozen=True)
class Searching:
    """What the search endpoints are bound to: the index service, and each client's last search."""

    services: Services
    last: LastSearches


def search_text(
    searching: Searching, query: str, k: int = DEFAULT_K, request: gr.Request | None = None
) -> dict[str, Any]:
    """Search the default image index by a text description (built from the sample photos on first use).

    Parameters:
        query: what to look for, e.g. "a cup of coffee"
        k: how many results, best first
    Returns:
        {"query", "index", "index_version", "embedder", "ranked_by", "results": [{"rank", "name", "score",
        "media_id"}]}
    """
    retrieval.check_query(query)  # before a first search builds the index
    searching.services.index.default_index()
    found = searching.services.index.search(text=query, k=int(k or DEFAULT_K))
    searching.last.put(request, found)
    return search_dict(found)


def search_image(
    searching: Searching,
    image: str | None,
    k: int = DEFAULT_K,
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """Search the default image index by an example image: the most similar images first.

    Parameters:
        image: the query image file
        k: how many results, best first
    Returns:
        the same shape as search_text, with "query_image" set
    """
    kept = retrieval.keep_uploads([checked_image(image)])[0]
    searching.services.index.default_index()
    found = searching.services.index.search(image=kept, k=int(k or DEFAULT_K))
    searching.last.put(request, found)
    return search_dict(found)


def judge(last: LastSearches, rank: int | None, relevant: bool, request: gr.Request) -> dict[str, Any]:
    """Judge one result of this client's last search as relevant or not (stored for fine-tuning).

    Parameters:
        rank: the result's rank in the last search_text / search_image of this client
        relevant: true for relevant, false for not relevant
    Returns:
        {"rank", "name", "relevant", "user"}
    """
    found = last.get(request)
    if found is None or not found.results:
        raise ValueError("search first (search_text or search_image), then judge a result by rank")
    ranks = {r.rank: r for r in found.results}
    if rank is None or int(rank) not in ranks:
        raise ValueError(f"there is no result #{rank}; pick one of 1–{len(found.results)}")
    user = visitor(request)
    retrieval.judge(found, int(rank), bool(relevant), user=user)
    return {"rank": int(rank), "name": ranks[int(rank)].name, "relevant": bool(relevant), "user": user}


def add_images(
    services: Services, images: list[str] | None, request: gr.Request | None = None
) -> dict[str, Any]:
    """Add images to the default index (files already indexed are skipped; unreadable ones are reported).

    Parameters:
        images: the image files to add
    Returns:
        {"added", "already_indexed", "failed": [{"name", "why"}], "size"}
    """
    accounts.require_index_write(current_user(request))
    if not images:
        raise ValueError("no images given: pass one or more image files")
    services.index.default_index()
    report = services.index.ingest(retrieval.keep_uploads(images))
    return {
        "added": [Path(path).name for path in report.added],  # names: server paths are not the caller's
        "already_indexed": [Path(path).name for path in report.already_indexed],
        "failed": [{"name": name, "why": why} for name, why in report.failed],
        "size": len(services.index.open_index()),
    }


def checked_image(image: str | None) -> str:
    if not image:
        from mmdemo.media.files import MediaError

        raise MediaError("no image given: pass an image file")
    return image
