"""Media items: every file the app has seen, recorded once under its content hash."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmdemo.data.db import StoreCore, now
from mmdemo.media.files import content_hash, file_hash


@dataclass(frozen=True)
class MediaItem:
    id: str
    path: str
    name: str  # what a person calls it: the file name it came with, not its kept copy's hash name
    kind: str
    bytes: int
    width: int | None
    height: int | None
    duration_s: float | None
    created_at: str


class MediaRecords(StoreCore):
    def add_media(
        self,
        path: str | Path,
        kind: str,
        *,
        data: bytes | None = None,
        width: int | None = None,
        height: int | None = None,
        duration_s: float | None = None,
        name: str | None = None,
        media_id: str | None = None,
    ) -> MediaItem:
        """Record a media file under its content hash; the same content again returns the first record.

        `name` (default: the file's name) is what the UI shows; a record first seen as a hash-named copy
        takes the real name when the same content arrives under one. `media_id`: the content hash, where the
        caller has it already (the file is then not read again)."""
        if media_id is None:
            media_id = content_hash(data) if data is not None else file_hash(path)
        size = len(data) if data is not None else Path(path).stat().st_size
        name = name or Path(path).name
        with self._write() as db:
            if (existing := self.media(media_id)) is not None:
                if existing.name.startswith(media_id) and not name.startswith(media_id):
                    db["media"].update(media_id, {"name": name})
                    return self.media(media_id)  # type: ignore[return-value]
                return existing
            db["media"].insert(
                {
                    "id": media_id,
                    "path": str(path),
                    "name": name,
                    "kind": kind,
                    "bytes": size,
                    "width": width,
                    "height": height,
                    "duration_s": duration_s,
                    "created_at": now(),
                }
            )
        return self.media(media_id)  # type: ignore[return-value]

    def add_hashed_images(self, images: Sequence[tuple[Path, str, int, int]]) -> None:
        """Record image files already hashed, as (path, media id, width, height), in one transaction."""
        with self._write():
            for path, media_id, width, height in images:
                self.add_media(path, "image", width=width, height=height, media_id=media_id)

    def media(self, media_id: str) -> MediaItem | None:
        return self._record(MediaItem, "media", media_id)
